//! `kailin mesh …`: thin subcommands over `kailin-mesh`.

use std::io::{Read, Write};
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

/// The bytes of a file, or of stdin for `-`.
fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut all = Vec::new();
        std::io::stdin().lock().read_to_end(&mut all).context("reading stdin")?;
        return Ok(all);
    }
    if path.is_dir() {
        bail!("{}: is a directory; give a file of lines", path.display());
    }
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Runs `each` over every line of `input` (`\n` or `\r\n` endings; a blank line is a line),
/// on every core, each thread on one run of whole lines; the outputs come back in input order.
/// Nothing comes back unless every line succeeded: the first failing line's error names `name`,
/// the 1-based line and what `each` said.
/// `init` makes each thread's scratch state; `input`'s first line is line `first`.
fn par_lines<S, I, F>(input: &[u8], name: &Path, first: usize, init: I, each: F) -> Result<Vec<Vec<u8>>>
where
    I: Fn() -> S + Sync,
    F: Fn(&mut S, &str, &mut Vec<u8>) -> std::result::Result<(), String> + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Runs of whole lines, about equal in bytes.
    let mut runs = Vec::with_capacity(threads);
    let mut start = 0;
    for t in 1..=threads {
        let mut end = (input.len() * t / threads).max(start);
        if t < threads {
            end = input[end..].iter().position(|&b| b == b'\n').map_or(input.len(), |i| end + i + 1);
        } else {
            end = input.len();
        }
        runs.push(&input[start..end]);
        start = end;
    }
    let work = |run: &[u8]| -> std::result::Result<Vec<u8>, (usize, String)> {
        // About 32 output bytes per 16 input bytes: one allocation for most runs.
        let mut out = Vec::with_capacity(run.len() * 2);
        let mut state = init();
        let Some(body) = (!run.is_empty()).then(|| run.strip_suffix(b"\n").unwrap_or(run)) else {
            return Ok(out);
        };
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = std::str::from_utf8(line).map_err(|_| (i, "not UTF-8 text".to_owned()))?;
            each(&mut state, text, &mut out).map_err(|m| (i, m))?;
        }
        Ok(out)
    };
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = runs[1..].iter().map(|run| s.spawn(|| work(run))).collect();
        let first = work(runs[0]);
        std::iter::once(Ok(first)).chain(handles.into_iter().map(|h| h.join())).collect()
    });
    let mut outputs = Vec::with_capacity(results.len());
    let mut before = 0;
    for (run, result) in runs.iter().zip(results) {
        match result {
            Ok(Ok(out)) => outputs.push(out),
            Ok(Err((i, message))) => {
                // Lines before this run, counted only now that a line failed.
                let at = first + input[..before].iter().filter(|&&b| b == b'\n').count() + i;
                bail!("{}:{at}: {message}", name.display());
            }
            Err(_) => bail!("{}: a worker thread panicked", name.display()),
        }
        before += run.len();
    }
    Ok(outputs)
}

/// Writes `outputs` to stdout, in order.
fn write_outputs(outputs: &[Vec<u8>]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for o in outputs {
        out.write_all(o)?;
    }
    out.flush()?;
    Ok(())
}

fn resolve(mesh: &Mesh, ui: &str) -> std::result::Result<DescriptorId, String> {
    mesh.by_ui(ui.trim()).ok_or_else(|| format!("unknown MeSH descriptor UI {:?}", ui.trim()))
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

/// One `--pairs` line: `None` for a blank one; the error says what is wrong with it.
fn pair_line<'a>(mesh: &Mesh, text: &'a str) -> std::result::Result<Option<Pair<'a>>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let Some((a, b)) = text.split_once('\t') else {
        return Err("expected `UI<TAB>UI`".into());
    };
    Ok(Some((a.trim(), b.trim(), (resolve(mesh, a)?, resolve(mesh, b)?))))
}

/// The pairs of `--pairs` lines (`None` for an empty line); `name` stands for the file in
/// errors, which name it and the line.
pub fn parse_pairs<'a>(mesh: &Mesh, input: &'a [(usize, String)], name: &Path) -> Result<Vec<Option<Pair<'a>>>> {
    input
        .iter()
        .map(|(line, text)| pair_line(mesh, text).map_err(|m| anyhow::anyhow!("{}:{line}: {m}", name.display())))
        .collect()
}

/// Two descriptor sets as a `--sets` line names them.
pub type SetPair = (Vec<DescriptorId>, Vec<DescriptorId>);

/// One `--sets` line: `None` for a blank one; the error says what is wrong with it.
fn set_line(mesh: &Mesh, text: &str) -> std::result::Result<Option<SetPair>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let Some((l, r)) = text.split_once('\t') else {
        return Err("expected `UI,UI,…<TAB>UI,UI,…`".into());
    };
    let side = |side: &str| -> std::result::Result<Vec<DescriptorId>, String> {
        side.split(',').filter(|s| !s.trim().is_empty()).map(|ui| resolve(mesh, ui)).collect()
    };
    Ok(Some((side(l)?, side(r)?)))
}

/// The descriptor sets of `--sets` lines (`None` for an empty line); errors as
/// [`parse_pairs`].
pub fn parse_sets(mesh: &Mesh, input: &[(usize, String)], name: &Path) -> Result<Vec<Option<SetPair>>> {
    input
        .iter()
        .map(|(line, text)| set_line(mesh, text).map_err(|m| anyhow::anyhow!("{}:{line}: {m}", name.display())))
        .collect()
}

fn sim(args: SimArgs) -> Result<()> {
    let input = read_input(&args.pairs)?;
    let mesh = load(&args.scoring.mesh)?;
    let sim = similarity(&mesh, &args.scoring);
    // Everything is scored before anything is printed: a bad line fails the whole run.
    let outputs = par_lines(
        &input,
        &args.pairs,
        1,
        || (),
        |_, text, out| {
            match pair_line(&mesh, text)? {
                Some((a, b, (x, y))) => {
                    out.extend_from_slice(a.as_bytes());
                    out.push(b'\t');
                    out.extend_from_slice(b.as_bytes());
                    out.push(b'\t');
                    push_score(out, sim.pair(x, y));
                }
                None => out.push(b'\n'),
            }
            Ok(())
        },
    )?;
    write_outputs(&outputs)
}

fn set_sim(args: SetSimArgs) -> Result<()> {
    let input = read_input(&args.sets)?;
    let mesh = load(&args.scoring.mesh)?;
    let sim = similarity(&mesh, &args.scoring);
    let agg = match args.agg {
        AggArg::Mean => Aggregate::Mean,
        AggArg::Bma => Aggregate::BestMatch,
    };
    let outputs = par_lines(
        &input,
        &args.sets,
        1,
        || (),
        |_, text, out| {
            match set_line(&mesh, text)? {
                Some((l, r)) => {
                    let s = sim.set_score(&l, &r, agg);
                    if s.dropped_left + s.dropped_right > 0 {
                        tracing::debug!(
                            dropped_left = s.dropped_left,
                            dropped_right = s.dropped_right,
                            "terms outside the hierarchy dropped"
                        );
                    }
                    push_score(out, s.score);
                }
                None => out.push(b'\n'),
            }
            Ok(())
        },
    )?;
    write_outputs(&outputs)
}

/// Appends `x` with nine decimals and a newline, as `format!("{x:.9}\n")` would.
fn push_score(out: &mut Vec<u8>, x: f64) {
    // Writing into a Vec cannot fail.
    let _ = writeln!(out, "{x:.9}");
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
    let init = || (kailin_mesh::Scratch::default(), Vec::new());
    let each =
        |(scratch, found): &mut (kailin_mesh::Scratch, Vec<kailin_mesh::Match>), line: &str, out: &mut Vec<u8>| {
            if nested {
                extractor.extract_all_with(line, scratch, found);
            } else {
                extractor.extract_with(line, scratch, found);
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
            serde_json::to_writer(&mut *out, &JsonLine { matches: &matches }).map_err(|e| e.to_string())?;
            out.push(b'\n');
            Ok(())
        };
    // Streamed in blocks of whole lines (memory stays bounded on any input); each block's
    // lines are shared among the cores and its output written before the next is read.
    let mut stdin = std::io::stdin().lock();
    let mut block = Vec::new();
    let mut first = 1;
    loop {
        let more = fill_block(&mut stdin, &mut block, EXTRACT_BLOCK).context("reading stdin")?;
        // The block ends after its last newline; the rest waits for the next block.
        let end =
            if more { block.iter().rposition(|&b| b == b'\n').map_or(block.len(), |i| i + 1) } else { block.len() };
        let outputs = par_lines(&block[..end], Path::new("stdin"), first, init, each)?;
        write_outputs(&outputs)?;
        first += block[..end].iter().filter(|&&b| b == b'\n').count();
        block.drain(..end);
        if !more {
            return Ok(());
        }
    }
}

/// Bytes of input `extract` handles at a time (a longer line is read whole).
const EXTRACT_BLOCK: usize = 16 << 20;

/// Reads from `r` until `block` holds at least `size` bytes and a newline, or the input
/// ends; whether more may follow.
fn fill_block(r: &mut impl Read, block: &mut Vec<u8>, size: usize) -> std::io::Result<bool> {
    let mut buf = vec![0u8; 1 << 16];
    let mut newline = block.contains(&b'\n');
    loop {
        if newline && block.len() >= size {
            return Ok(true);
        }
        match r.read(&mut buf) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                newline |= buf[..n].contains(&b'\n');
                block.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
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
