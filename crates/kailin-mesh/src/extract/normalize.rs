//! The normaliser text and dictionary terms share: lower case, possessives, regular plurals,
//! British spellings, adjectival suffixes, Roman numerals and Greek letters.

/// Derivational suffixes mapped to the noun form MeSH uses (`hypertensive` → `hypertension`,
/// `anemic` → `anemia`), applied to text and dictionary alike.
const SUFFIXES: &[(&str, &str)] = &[
    ("ssive", "ssion"),
    ("nsive", "nsion"),
    ("lsive", "lsion"),
    ("emic", "emia"),
    ("oxic", "oxia"),
    ("phrenic", "phrenia"),
    ("kinetic", "kinesia"),
    ("pathic", "pathy"),
    ("plastic", "plasia"),
    ("trophic", "trophy"),
    ("rgic", "rgy"),
    ("algic", "algia"),
    ("plegic", "plegia"),
    ("tonic", "tonia"),
    ("lexic", "lexia"),
    ("rotic", "rosis"),
    ("hotic", "hosis"),
    ("botic", "bosis"),
    ("totic", "tosis"),
    ("enotic", "enosis"),
    ("leptic", "lepsy"),
    ("abetic", "abete"),
    ("bolic", "bolism"),
    ("holic", "holism"),
];

/// Greek letters as the literature spells them out (`TNF-α` = `TNF-alpha`).
const GREEK: &[(char, &str)] = &[
    ('α', "alpha"),
    ('β', "beta"),
    ('γ', "gamma"),
    ('δ', "delta"),
    ('ε', "epsilon"),
    ('κ', "kappa"),
    ('λ', "lambda"),
    ('μ', "mu"),
    ('ω', "omega"),
];

/// Two-letter chemical element symbols that are not also English words or common
/// abbreviations (no `As`, `In`, `Be`, `He`, `No`, `Al`, `Co`, `Pt`…), indexed case-exactly
/// for the element's descriptor (`Na+`, `Ca(2+)`).
pub(super) const ELEMENTS: &[(&str, &str)] = &[
    ("Na", "Sodium"),
    ("Ca", "Calcium"),
    ("Mg", "Magnesium"),
    ("Fe", "Iron"),
    ("Zn", "Zinc"),
    ("Cu", "Copper"),
    ("Hg", "Mercury"),
    ("Pb", "Lead"),
    ("Cd", "Cadmium"),
    ("Li", "Lithium"),
    ("Mn", "Manganese"),
    ("Cr", "Chromium"),
    ("Sr", "Strontium"),
    ("Ag", "Silver"),
    ("Au", "Gold"),
    ("Se", "Selenium"),
    ("Ni", "Nickel"),
    ("Rb", "Rubidium"),
    ("Cs", "Cesium"),
    ("Tl", "Thallium"),
    ("Bi", "Bismuth"),
    ("Gd", "Gadolinium"),
];

/// Roman numerals II–XX as digits (`type II` = `type 2`); `I`, `V` and `X` alone stay.
fn roman(token: &str) -> Option<u32> {
    if token.len() < 2 || !token.bytes().all(|b| matches!(b, b'i' | b'v' | b'x')) {
        return None;
    }
    let value = |b: u8| match b {
        b'i' => 1,
        b'v' => 5,
        _ => 10,
    };
    let b = token.as_bytes();
    let mut total = 0i32;
    for (k, &c) in b.iter().enumerate() {
        let v = value(c);
        if b.get(k + 1).is_some_and(|&n| value(n) > v) {
            total -= v;
        } else {
            total += v;
        }
    }
    // Only canonical spellings: reject `iiii`, `vx`, …
    (2..=20).find(|&n| n == total && to_roman(n as u32) == token).map(|n| n as u32)
}

fn to_roman(mut n: u32) -> String {
    let mut s = String::new();
    for (v, r) in [(10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")] {
        while n >= v {
            s.push_str(r);
            n -= v;
        }
    }
    s
}

/// The normal form of one token: lower-cased; British `ae`/`oe`/`-our` spelt the American
/// way; regular plurals reduced; adjectival suffixes mapped to their noun form.
pub(super) fn normalize(token: &str, out: &mut String) {
    lowercase(token, out);
    normalize_lowercase(out);
}

/// Lower-cases a token into `out`, spelling out Greek letters.
#[inline]
fn lowercase(token: &str, out: &mut String) {
    out.clear();
    if token.is_ascii() {
        out.push_str(token);
        out.make_ascii_lowercase();
    } else {
        for c in token.chars().flat_map(char::to_lowercase) {
            match GREEK.iter().find(|(g, _)| *g == c) {
                Some((_, name)) => out.push_str(name),
                None => out.push(c),
            }
        }
    }
}

/// Whether [`normalize_lowercase`] could change this lower-cased ASCII token: a cheap,
/// conservative test of the rules' triggers (kept in step with them by a test).
#[inline]
pub(super) fn may_normalize(b: &[u8]) -> bool {
    let n = b.len();
    if n >= 2 && b.iter().all(|c| matches!(c, b'i' | b'v' | b'x')) {
        return true; // Roman numeral
    }
    if n < 4 || !b.iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    // Plurals and `-ies` end in s; suffixes in c or e; `-our` and `cancer` in r; British
    // spellings hold `ae` or `oe`.
    matches!(b[n - 1], b's' | b'c' | b'e' | b'r') || b.windows(2).any(|w| w[1] == b'e' && matches!(w[0], b'a' | b'o'))
}

/// [`normalize`] of an already lower-cased token, in place.
pub(super) fn normalize_lowercase(out: &mut String) {
    if let Some(n) = roman(out) {
        out.clear();
        out.push_str(&n.to_string());
        return;
    }
    let b = out.as_bytes();
    let n = b.len();
    if n < 4 || !b.iter().all(u8::is_ascii_alphabetic) {
        return;
    }
    // British spellings: haemorrhage, anaemia; oedema, diarrhoea, foetal (`oe` only where
    // British spelling puts it, not in compounds like thrombo-embolic); tumour (below).
    if n >= 5 && b.windows(2).any(|w| w[1] == b'e' && (w[0] == b'a' || w[0] == b'o')) {
        if out.contains("ae") {
            *out = out.replace("ae", "e");
        }
        if out.starts_with("oe") {
            out.remove(0);
        }
        if out.contains("oea") || out.contains("foet") || out.contains("coel") || out.contains("amoeb") {
            *out = out.replace("oea", "ea").replace("foet", "fet").replace("coel", "cel").replace("amoeb", "ameb");
        }
    }
    let n = out.len();
    let b = out.as_bytes();
    if n > 4 && out.ends_with("ies") {
        out.truncate(n - 3);
        out.push('y');
    } else if b[n - 1] == b's' && !matches!(b[n - 2], b's' | b'u' | b'i') {
        out.truncate(n - 1);
    }
    let n = out.len();
    if n >= 6 && out.as_bytes()[n - 1] == b'r' && out.ends_with("our") {
        out.truncate(n - 2);
        out.push('r');
    }
    if out == "cancer" {
        // MeSH names malignancies `… Neoplasms` and files `… Cancer` under separate
        // concepts, which term lists often omit.
        out.replace_range(.., "neoplasm");
        return;
    }
    // Every suffix ends in `c` or `e`: test one byte before probing the table.
    if out.len() >= 6
        && matches!(out.as_bytes()[out.len() - 1], b'c' | b'e')
        && let Some((from, to)) = SUFFIXES.iter().find(|(from, _)| out.ends_with(from))
    {
        let keep = out.len() - from.len();
        out.truncate(keep);
        out.push_str(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_rules() {
        let mut k = String::new();
        for (w, n) in [
            ("Allergies", "allergy"),
            ("tumors", "tumor"),
            ("stress", "stress"),
            ("virus", "virus"),
            ("gas", "gas"),
            ("arthritis", "arthritis"),
            ("5HTs", "5hts"),
            ("hypertensive", "hypertension"),
            ("anaemic", "anemia"),
            ("Haemorrhages", "hemorrhage"),
            ("tumours", "tumor"),
            ("Oedema", "edema"),
            ("diarrhoea", "diarrhea"),
            ("gastroenteritis", "gastroenteritis"),
            ("schizophrenic", "schizophrenia"),
            ("thrombotic", "thrombosis"),
            ("hypnotic", "hypnotic"),
            ("antibiotics", "antibiotic"),
            ("four", "four"),
            ("Cancers", "neoplasm"),
            ("epileptic", "epilepsy"),
            ("diabetic", "diabete"),
            ("Diabetes", "diabete"),
            ("thromboembolic", "thromboembolism"),
            ("II", "2"),
            ("xiv", "14"),
            ("iiii", "iiii"),
            ("vx", "vx"),
            ("α", "alpha"),
        ] {
            normalize(w, &mut k);
            assert_eq!(k, n, "{w}");
        }
    }

    #[test]
    fn may_normalize_covers_every_rule() {
        let words = [
            "Allergies",
            "tumours",
            "hypertensive",
            "anaemic",
            "oedema",
            "diarrhoea",
            "foetal",
            "coeliac",
            "amoebic",
            "ii",
            "xiv",
            "cancer",
            "schizophrenic",
            "thrombotic",
            "epileptic",
            "diabetic",
            "alcoholic",
            "glutamates",
            "investigated",
            "significantly",
            "blood",
            "2,4",
            "dopamine",
            "in",
            "aids",
            "α",
        ];
        let mut out = String::new();
        for w in words {
            let lower = w.to_ascii_lowercase();
            normalize(&lower, &mut out);
            if out != lower && lower.is_ascii() {
                assert!(may_normalize(lower.as_bytes()), "{w} normalises to {out} but the pre-check says no");
            }
        }
        assert!(!may_normalize(b"investigated"));
    }
}
