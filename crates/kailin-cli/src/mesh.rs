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
            kailin_core::check_outputs(&[("--mesh", &mesh)], &[("--out", &out)])?;
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

/// The lines of a run of whole lines (`\n` or `\r\n` endings; a blank line is a line), with
/// their 0-based index in the run; a line that is not UTF-8 is an error naming its index.
fn run_lines(run: &[u8]) -> impl Iterator<Item = std::result::Result<(usize, &str), (usize, String)>> {
    let body = if run.is_empty() { None } else { Some(run.strip_suffix(b"\n").unwrap_or(run)) };
    body.into_iter().flat_map(|b| b.split(|&c| c == b'\n')).enumerate().map(|(i, line)| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        std::str::from_utf8(line).map(|text| (i, text)).map_err(|_| (i, "not UTF-8 text".to_owned()))
    })
}

/// Runs `each` over every line of `input` (see [`par_runs`]), each thread with its own
/// scratch state from `init`.
fn par_lines<S, I, F>(input: &[u8], name: &Path, first: usize, init: I, each: F) -> Result<Vec<Vec<u8>>>
where
    I: Fn() -> S + Sync,
    F: Fn(&mut S, &str, &mut Vec<u8>) -> std::result::Result<(), String> + Sync,
{
    par_runs(input, name, first, |run, out| {
        let mut state = init();
        for line in run_lines(run) {
            let (i, text) = line?;
            each(&mut state, text, out).map_err(|m| (i, m))?;
        }
        Ok(())
    })
}

/// Splits `input` into one run of whole lines per core, about equal in bytes, and runs `work`
/// on each (in parallel) with the run's own output buffer; the outputs come back in input
/// order. Nothing comes back unless every run succeeded: a run's error `(i, message)` (its
/// `i`-th line, 0-based, failed) is reported as `name:LINE: message`, LINE counted across
/// runs from `first` (the number of `input`'s first line).
fn par_runs<F>(input: &[u8], name: &Path, first: usize, work: F) -> Result<Vec<Vec<u8>>>
where
    F: Fn(&[u8], &mut Vec<u8>) -> std::result::Result<(), (usize, String)> + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
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
        work(run, &mut out)?;
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

/// The descriptor of a UI (already trimmed).
fn resolve(mesh: &Mesh, ui: &str) -> std::result::Result<DescriptorId, String> {
    mesh.by_ui(ui).ok_or_else(|| format!("unknown MeSH descriptor UI {ui:?}"))
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
    let Some((a, b)) = text.split_once('\t') else {
        return if text.trim().is_empty() { Ok(None) } else { Err("expected `UI<TAB>UI`".into()) };
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() && b.is_empty() {
        // Only whitespace (the tab included): a blank line.
        return Ok(None);
    }
    Ok(Some((a, b, (resolve(mesh, a)?, resolve(mesh, b)?))))
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
        side.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|ui| resolve(mesh, ui)).collect()
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
    /// Lines parsed before their pairs are scored together (see [`Similarity::pairs`]).
    const BLOCK: usize = 512;
    let input = read_input(&args.pairs)?;
    let mesh = load(&args.scoring.mesh)?;
    let sim = similarity(&mesh, &args.scoring);
    // Everything is scored before anything is printed: a bad line fails the whole run.
    let outputs = par_runs(&input, &args.pairs, 1, |run, out| {
        // A block's lines (`None`: blank), the pairs among them, their scores.
        let mut lines: Vec<Option<(&str, &str)>> = Vec::with_capacity(BLOCK);
        let mut ids = Vec::with_capacity(BLOCK);
        let mut scores = Vec::with_capacity(BLOCK);
        let mut flush = |lines: &mut Vec<Option<(&str, &str)>>, ids: &mut Vec<_>, out: &mut Vec<u8>| {
            sim.pairs(ids, &mut scores);
            let mut score = scores.iter();
            for line in lines.iter() {
                // Blank lines took no score.
                if let Some((a, b)) = line
                    && let Some(&s) = score.next()
                {
                    out.extend_from_slice(a.as_bytes());
                    out.push(b'\t');
                    out.extend_from_slice(b.as_bytes());
                    out.push(b'\t');
                    push_score(out, s);
                } else {
                    out.push(b'\n');
                }
            }
            lines.clear();
            ids.clear();
        };
        for line in run_lines(run) {
            let (i, text) = line?;
            match pair_line(&mesh, text).map_err(|m| (i, m))? {
                Some((a, b, pair)) => {
                    lines.push(Some((a, b)));
                    ids.push(pair);
                }
                None => lines.push(None),
            }
            if lines.len() == BLOCK {
                flush(&mut lines, &mut ids, out);
            }
        }
        flush(&mut lines, &mut ids, out);
        Ok(())
    })?;
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

/// Appends `x` with nine decimals and a newline, exactly as `format!("{x:.9}\n")` would
/// (scores in `[0, 9·10⁶)` without `fmt`, from the exact value rounded half to even).
fn push_score(out: &mut Vec<u8>, x: f64) {
    match nanos(x) {
        Some(n) => {
            let mut digits = itoa::Buffer::new();
            out.extend_from_slice(digits.format(n / 1_000_000_000).as_bytes());
            out.push(b'.');
            let frac = digits.format(n % 1_000_000_000).as_bytes();
            out.extend(std::iter::repeat_n(b'0', 9 - frac.len()));
            out.extend_from_slice(frac);
            out.push(b'\n');
        }
        // Writing into a Vec cannot fail.
        None => {
            let _ = writeln!(out, "{x:.9}");
        }
    }
}

/// `x · 10⁹` rounded half to even, computed exactly, for `0 ≤ x < 9·10⁶` (`-0.0` and
/// anything else: `None`).
fn nanos(x: f64) -> Option<u64> {
    if x.is_sign_negative() || x.is_nan() || x >= 9.0e6 {
        return None;
    }
    let bits = x.to_bits();
    let (exp, frac) = (((bits >> 52) & 0x7ff) as i32, bits & ((1 << 52) - 1));
    // x = m · 2^e exactly.
    let (m, e) = if exp == 0 { (frac, -1074) } else { (frac | 1 << 52, exp - 1075) };
    let num = u128::from(m) * 1_000_000_000;
    if e >= 0 {
        // An integer below 9·10⁶: no rounding.
        return u64::try_from(num << e).ok();
    }
    let shift = e.unsigned_abs();
    if shift >= 127 {
        // Below 2⁻⁴⁴ · 10⁻⁹: rounds to 0.
        return Some(0);
    }
    let (q, r, half) = (num >> shift, num & ((1u128 << shift) - 1), 1u128 << (shift - 1));
    let q = if r > half || (r == half && q & 1 == 1) { q + 1 } else { q };
    u64::try_from(q).ok()
}

/// Appends `s` as a JSON string (quoted, escaped as `serde_json` escapes).
fn push_json_str(out: &mut Vec<u8>, s: &str) -> std::result::Result<(), String> {
    serde_json::to_writer(&mut *out, s).map_err(|e| e.to_string())
}

/// Appends one extraction's JSON line, `{"matches":[{"ui":…,"start":…,"end":…,"text":…},…]}`
/// as `serde_json` writes it compactly; offsets in Unicode characters (code points), so that
/// `line[start:end]` in Python (or any code-point–indexed language) is the matched text.
/// Written straight to the output with no JSON tree in between (a 10 MB line has a million
/// matches).
fn push_matches(
    out: &mut Vec<u8>,
    mesh: &Mesh,
    line: &str,
    found: &[kailin_mesh::Match],
) -> std::result::Result<(), String> {
    let mut char_at = CharOffsets::new(line);
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(b"{\"matches\":[");
    for (i, m) in found.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"ui\":");
        push_json_str(out, mesh.descriptor(m.descriptor).ui())?;
        out.extend_from_slice(b",\"start\":");
        out.extend_from_slice(digits.format(char_at.of(m.start)).as_bytes());
        out.extend_from_slice(b",\"end\":");
        out.extend_from_slice(digits.format(char_at.of(m.end)).as_bytes());
        out.extend_from_slice(b",\"text\":");
        push_json_str(out, m.text(line))?;
        out.push(b'}');
    }
    out.extend_from_slice(b"]}\n");
    Ok(())
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
            push_matches(out, &mesh, line, found)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn formatted(x: f64) -> String {
        let mut out = Vec::new();
        push_score(&mut out, x);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn scores_print_as_fmt_prints_them() {
        // Ties at the ninth decimal (dyadic values), both roundings, edges and the fallbacks.
        let mut xs = vec![
            0.0,
            -0.0,
            1.0,
            0.1,
            2f64.powi(-10),
            3.0 * 2f64.powi(-10),
            0.999_999_999_5,
            0.999_999_999_4,
            f64::MIN_POSITIVE,
            5e-324,
            8_999_999.999_999_999,
            9.0e6,
            1e300,
            -1.5,
            f64::NAN,
            f64::INFINITY,
        ];
        // Random bit patterns in [0, 16) and random multiples of 2^-k (many exact ties).
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            xs.push(f64::from_bits(next() % 0x4030_0000_0000_0000));
            let k = (next() % 40) as i32;
            xs.push((next() % (1 << 20)) as f64 * 2f64.powi(-k));
        }
        for x in xs {
            assert_eq!(formatted(x), format!("{x:.9}\n"), "{x:e}");
        }
    }
}
