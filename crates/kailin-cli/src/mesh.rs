//! `kailin mesh …`: thin subcommands over `kailin-mesh`.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use kailin_mesh::{Aggregate, DescriptorId, Extractor, Lca, Measure, Mesh, Similarity};

/// MeSH hierarchy: load, convert, score, extract.
#[derive(Debug, Subcommand)]
pub(crate) enum MeshCmd {
    /// Print counts of a hierarchy as one JSON object.
    Info {
        /// MeSH file: descriptor XML (.gz too), ASCII tree file, TSV, or kailin cache.
        #[arg(long)]
        mesh: PathBuf,
    },
    /// Score descriptor pairs: reads `UI<TAB>UI` lines, prints `UI<TAB>UI<TAB>score` (an empty line
    /// for an empty one).
    Sim(SimArgs),
    /// Score descriptor sets: reads `UI,UI,…<TAB>UI,UI,…` lines, prints one score per line (an
    /// empty line for an empty one).
    SetSim(SetSimArgs),
    /// Extract MeSH terms: one document per stdin line, one JSON line per document out.
    Extract {
        /// MeSH file (any supported format).
        #[arg(long)]
        mesh: PathBuf,
        /// Do not resolve abbreviations defined in the text.
        #[arg(long)]
        no_abbreviations: bool,
        /// Also report chemicals nested in protein names (`creatine` in `creatine kinase`);
        /// matches may then overlap.
        #[arg(long)]
        nested: bool,
    },
    /// Write the binary cache of a hierarchy (reloads in milliseconds).
    Cache {
        /// MeSH file (any supported format).
        #[arg(long)]
        mesh: PathBuf,
        /// Cache file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum MeasureArg {
    Resnik,
    Lin,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LcaArg {
    Mica,
    Tree,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AggArg {
    Mean,
    Bma,
}

#[derive(Debug, Args)]
pub(crate) struct Scoring {
    /// MeSH file (any supported format).
    #[arg(long)]
    mesh: PathBuf,
    /// Pair measure.
    #[arg(long, value_enum, default_value = "resnik")]
    measure: MeasureArg,
    /// Common-ancestor definition.
    #[arg(long, value_enum, default_value = "mica")]
    lca: LcaArg,
}

#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    #[command(flatten)]
    scoring: Scoring,
    /// File of `UI<TAB>UI` lines (`-` for stdin).
    #[arg(long)]
    pairs: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct SetSimArgs {
    #[command(flatten)]
    scoring: Scoring,
    /// Aggregation over pairs.
    #[arg(long, value_enum, default_value = "mean")]
    agg: AggArg,
    /// File of `UI,UI,…<TAB>UI,UI,…` lines (`-` for stdin).
    #[arg(long)]
    sets: PathBuf,
}

pub(crate) fn run(cmd: MeshCmd) -> Result<()> {
    match cmd {
        MeshCmd::Info { mesh } => info(&mesh),
        MeshCmd::Sim(args) => sim(args),
        MeshCmd::SetSim(args) => set_sim(args),
        MeshCmd::Extract { mesh, no_abbreviations, nested } => extract(&mesh, !no_abbreviations, nested),
        MeshCmd::Cache { mesh, out } => {
            let m = load(&mesh)?;
            m.save_cache(&out)?;
            tracing::info!(descriptors = m.len(), out = %out.display(), "wrote MeSH cache");
            Ok(())
        }
    }
}

fn load(path: &Path) -> Result<Mesh> {
    let started = std::time::Instant::now();
    // The library's errors name the file (and line).
    let mesh = Mesh::load(path)?;
    tracing::info!(descriptors = mesh.len(), elapsed = ?started.elapsed(), "loaded MeSH");
    Ok(mesh)
}

fn info(path: &Path) -> Result<()> {
    let mesh = load(path)?;
    let format = kailin_mesh::detect_format(path)?;
    let out = serde_json::json!({
        "source": path.display().to_string(),
        "format": format!("{format:?}").to_lowercase(),
        "descriptors": mesh.len(),
        "with_tree": mesh.descriptors_in_tree(),
        "tree_numbers": mesh.tree_number_count(),
        "entry_terms": mesh.entry_term_count(),
        "edges": mesh.graph().edge_count(),
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{out}")?;
    Ok(())
}

/// Lines of a file, or of stdin for `-`, with 1-based numbers; blank lines are kept (each
/// input line has its output line).
fn lines(path: &Path) -> Result<Vec<(usize, String)>> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        if path.is_dir() {
            bail!("{}: is a directory; give a file of lines", path.display());
        }
        let f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => anyhow::anyhow!("{}:{}: not UTF-8 text", path.display(), i + 1),
            _ => anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1),
        })?;
        out.push((i + 1, line.trim_end_matches('\r').to_owned()));
    }
    Ok(out)
}

fn resolve(mesh: &Mesh, ui: &str, path: &Path, line: usize) -> Result<DescriptorId> {
    mesh.by_ui(ui.trim())
        .with_context(|| format!("{}:{line}: unknown MeSH descriptor UI {:?}", path.display(), ui.trim()))
}

fn similarity<'m>(mesh: &'m Mesh, s: &Scoring) -> Similarity<'m> {
    Similarity::new(mesh)
        .measure(match s.measure {
            MeasureArg::Resnik => Measure::Resnik,
            MeasureArg::Lin => Measure::Lin,
        })
        .lca(match s.lca {
            LcaArg::Mica => Lca::Mica,
            LcaArg::Tree => Lca::Tree,
        })
}

/// A pair of descriptors as a `--pairs` line names them.
pub type Pair<'a> = (&'a str, &'a str, (DescriptorId, DescriptorId));

/// The pairs of `--pairs` lines (`None` for an empty line); `name` stands for the file in
/// errors, which name it and the line.
pub fn parse_pairs<'a>(mesh: &Mesh, input: &'a [(usize, String)], name: &Path) -> Result<Vec<Option<Pair<'a>>>> {
    let mut pairs = Vec::with_capacity(input.len());
    for (line, text) in input {
        if text.trim().is_empty() {
            pairs.push(None);
            continue;
        }
        let Some((a, b)) = text.split_once('\t') else {
            bail!("{}:{line}: expected `UI<TAB>UI`", name.display());
        };
        let ids = (resolve(mesh, a, name, *line)?, resolve(mesh, b, name, *line)?);
        pairs.push(Some((a.trim(), b.trim(), ids)));
    }
    Ok(pairs)
}

/// Two descriptor sets as a `--sets` line names them.
pub type SetPair = (Vec<DescriptorId>, Vec<DescriptorId>);

/// The descriptor sets of `--sets` lines (`None` for an empty line); errors as
/// [`parse_pairs`].
pub fn parse_sets(mesh: &Mesh, input: &[(usize, String)], name: &Path) -> Result<Vec<Option<SetPair>>> {
    let parse_side = |side: &str, line: usize| -> Result<Vec<DescriptorId>> {
        side.split(',').filter(|s| !s.trim().is_empty()).map(|ui| resolve(mesh, ui, name, line)).collect()
    };
    let mut sets = Vec::with_capacity(input.len());
    for (line, text) in input {
        if text.trim().is_empty() {
            sets.push(None);
            continue;
        }
        let Some((l, r)) = text.split_once('\t') else {
            bail!("{}:{line}: expected `UI,UI,…<TAB>UI,UI,…`", name.display());
        };
        sets.push(Some((parse_side(l, *line)?, parse_side(r, *line)?)));
    }
    Ok(sets)
}

fn sim(args: SimArgs) -> Result<()> {
    let input = lines(&args.pairs)?;
    let mesh = load(&args.scoring.mesh)?;
    let sim = similarity(&mesh, &args.scoring);
    // Resolve everything before printing anything: a bad line fails the whole run.
    let pairs = parse_pairs(&mesh, &input, &args.pairs)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    for pair in pairs {
        match pair {
            Some((a, b, (x, y))) => writeln!(out, "{a}\t{b}\t{:.9}", sim.pair(x, y))?,
            None => writeln!(out)?,
        }
    }
    out.flush()?;
    Ok(())
}

fn set_sim(args: SetSimArgs) -> Result<()> {
    let input = lines(&args.sets)?;
    let mesh = load(&args.scoring.mesh)?;
    let sim = similarity(&mesh, &args.scoring);
    let agg = match args.agg {
        AggArg::Mean => Aggregate::Mean,
        AggArg::Bma => Aggregate::BestMatch,
    };
    let sets = parse_sets(&mesh, &input, &args.sets)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    for set in sets {
        let Some((l, r)) = set else {
            writeln!(out)?;
            continue;
        };
        let s = sim.set_score(&l, &r, agg);
        if s.dropped_left + s.dropped_right > 0 {
            tracing::debug!(
                dropped_left = s.dropped_left,
                dropped_right = s.dropped_right,
                "terms outside the hierarchy dropped"
            );
        }
        writeln!(out, "{:.9}", s.score)?;
    }
    out.flush()?;
    Ok(())
}

#[derive(serde::Serialize)]
struct JsonLine<'a> {
    matches: &'a [JsonMatch<'a>],
}

#[derive(serde::Serialize)]
struct JsonMatch<'a> {
    ui: &'a str,
    /// Offsets in Unicode characters (code points), so that `line[start:end]` in Python
    /// (or any code-point–indexed language) is the matched text.
    start: usize,
    end: usize,
    text: &'a str,
}

fn extract(path: &Path, abbreviations: bool, nested: bool) -> Result<()> {
    let mesh = load(path)?;
    let started = std::time::Instant::now();
    let extractor = Extractor::builder(&mesh).abbreviations(abbreviations).build()?;
    tracing::info!(patterns = extractor.pattern_count(), elapsed = ?started.elapsed(), "built extractor");
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut scratch = kailin_mesh::Scratch::default();
    let mut found = Vec::new();
    for (i, line) in stdin.lines().enumerate() {
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => anyhow::anyhow!("stdin line {}: not UTF-8 text", i + 1),
            _ => anyhow::anyhow!("stdin line {}: {e}", i + 1),
        })?;
        let line = line.trim_end_matches('\r');
        if nested {
            extractor.extract_all_with(line, &mut scratch, &mut found);
        } else {
            extractor.extract_with(line, &mut scratch, &mut found);
        }
        let mut char_at = CharOffsets::new(line);
        let matches: Vec<JsonMatch<'_>> = found
            .iter()
            .map(|m| JsonMatch {
                ui: mesh.descriptor(m.descriptor).ui(),
                start: char_at.of(m.start),
                end: char_at.of(m.end),
                text: m.text(line),
            })
            .collect();
        // Straight to the output, no JSON tree in between (a 10 MB line has a million matches).
        serde_json::to_writer(&mut out, &JsonLine { matches: &matches })?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Converts increasing byte offsets to character offsets in one pass.
struct CharOffsets<'a> {
    text: &'a str,
    byte: usize,
    chars: usize,
}

impl<'a> CharOffsets<'a> {
    fn new(text: &'a str) -> Self {
        CharOffsets { text, byte: 0, chars: 0 }
    }
    fn of(&mut self, byte: usize) -> usize {
        if byte < self.byte {
            self.byte = 0;
            self.chars = 0;
        }
        self.chars += self.text[self.byte..byte].chars().count();
        self.byte = byte;
        self.chars
    }
}
