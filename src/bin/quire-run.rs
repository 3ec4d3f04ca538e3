fn main() -> std::process::ExitCode {
    quire_run::main()
}
