fn main() {
    std::process::exit(cimrun::cli::main());
}
