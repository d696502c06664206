//! Prompt templates: the text an agent sends a model, kept in a file a user can read and
//! change (Jinja, rendered with `minijinja`) and versioned by its content, so a record's
//! provenance says which prompt produced it.

use std::path::Path;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::error::{Error, Result};

/// A compiled prompt template with its name and version.
#[derive(Clone)]
pub struct PromptTemplate {
    env: Arc<Environment<'static>>,
    name: String,
    version: String,
}

impl std::fmt::Debug for PromptTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptTemplate").field("version", &self.version).finish_non_exhaustive()
    }
}

impl PromptTemplate {
    /// Compiles `source` (Jinja) under `name`. Variables the template uses but a render does
    /// not give are errors, not empty text.
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> Result<Self> {
        let (name, source) = (name.into(), source.into());
        let version = format!("{name}@{}", &kailin_core::Fnv64::new().bytes(source.as_bytes()).hex()[..8]);
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template_owned(name.clone(), source)
            .map_err(|e| Error::Template(format!("prompt template {name}: {e:#}")))?;
        Ok(PromptTemplate { env: Arc::new(env), name, version })
    }

    /// Reads and compiles the template in `path`; its name is the file's stem.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path)
            .map_err(|e| Error::Template(format!("reading the prompt template {}: {e}", path.display())))?;
        let name = path.file_stem().map_or_else(|| "prompt".to_owned(), |s| s.to_string_lossy().into_owned());
        Self::new(name, source)
    }

    /// `name@` and the first 8 hex digits of the source's FNV-1a hash: changes whenever the
    /// text does.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The text for `context` (any serialisable value whose fields the template names).
    pub fn render(&self, context: impl Serialize) -> Result<String> {
        let template = self.env.get_template(&self.name).map_err(|e| Error::Template(format!("{e:#}")))?;
        template
            .render(minijinja::value::Serde(context))
            .map_err(|e| Error::Template(format!("prompt template {}: {e:#}", self.version)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_versions_and_refuses_missing_variables() {
        let t = PromptTemplate::new("q", "Q: {{ text }}{% if title %} ({{ title }}){% endif %}").unwrap();
        assert_eq!(t.render(serde_json::json!({"text": "x", "title": ""})).unwrap(), "Q: x");
        assert!(t.version().starts_with("q@") && t.version().len() == 10);
        let other = PromptTemplate::new("q", "Q: {{ text }}").unwrap();
        assert_ne!(t.version(), other.version());
        assert!(t.render(serde_json::json!({"title": "t"})).is_err());
        assert!(PromptTemplate::new("bad", "{% if %}").is_err());
    }
}
