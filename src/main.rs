fn main() {
    cimrun::run::limit_malloc_arenas();
    std::process::exit(cimrun::cli::main());
}
