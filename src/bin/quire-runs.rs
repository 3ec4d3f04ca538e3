fn main() -> std::process::ExitCode {
    quire_runs::main()
}
