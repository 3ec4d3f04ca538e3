fn main() -> std::process::ExitCode {
    quire_cli::runs::main()
}
