//! `cargo xtask full-pipeline`: `kailin run` (kailin-cli), after fetching the models a preset
//! needs.

use anyhow::Result;

/// Runs `kailin run` with `args`, fetching SmolLM2 and MiniLM first when the configuration
/// names them (MiniLM also as the domain encoder's base) and the model cache lacks them.
pub(crate) fn run(args: &kailin_cli::RunArgs) -> Result<()> {
    let config = kailin_cli::config_of(args)?;
    let minilm =
        config.models.encoder == "minilm" || (config.models.encoder == "domain" && config.encoder.base == "minilm");
    if !args.print_config && (config.models.base == "smollm2" || minilm) {
        let dir = crate::models::models_dir();
        let have = |p: &str| dir.join(p).exists();
        if !(have("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
            && have("all-minilm-l6-v2/model.safetensors"))
        {
            println!("fetching the models into {}", dir.display());
            crate::models::fetch(&dir)?;
        }
    }
    kailin_cli::run_pipeline(args)
}
