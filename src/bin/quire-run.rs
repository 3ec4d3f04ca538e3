fn main() -> std::process::ExitCode {
    quire_cli::run::main()
}
