//! Two matmuls in one dispatch: a dense layer's weight gradient (`dW = dZᵀ·X` with `db`) and its
//! input gradient (`dX = (dZ·W) ⊙ act'(X)`) are independent, so one launch can run both and a
//! training step needs one backward dispatch per layer instead of two.
//!
//! The module is made from a matmul kernel's own WGSL, not written a second time: [`pair_source`]
//! copies the kernel twice, renaming every module-scope name with a `_0`/`_1` suffix, moving the
//! second copy's bindings up by [`SECOND_JOB_BINDINGS`] and pointing each copy's `p` at its half
//! of one `PairParams` uniform, then adds an entry point that sends workgroups with
//! `x < split` to the first copy and the rest to the second. Both copies see the grid, builtins
//! and constants of a launch of their own, so each computes exactly what the single kernel does.
//! Workgroup memory is shared: a workgroup runs one copy only.
//!
//! WGSL variants are made one way in this crate: a generator writes a checked-in `.wgsl` file,
//! and a test fails when the file differs from what the generator writes now (so the module a
//! device compiles is text anyone can read, diff and hand to a browser, and nothing is built at
//! run time). The register-tiled kernels come from Python scripts (`shaders/gen_*.py`,
//! `tests/shader_sources.rs`); the paired modules from [`pair_source`] here, run by the test
//! `generated_pair_modules_are_up_to_date` (`SHADERGRAD_BLESS=1` rewrites the files).

use crate::gpu::kernels::{Kernel, Shader, Slot};
#[cfg(test)]
use std::fmt::Write as _;

/// The second job's binding numbers are the first job's plus this.
pub(crate) const SECOND_JOB_BINDINGS: u32 = 8;

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
/// What the pair module declares besides the two copies: the uniform of both jobs and how the
/// grid is shared. Rust twin: `PairParams` in `gpu/uniforms.rs`.
const PAIR_PARAMS: &str = "
// Two jobs in one launch (gpu/matmul_pair.rs): workgroups with x < split run job 0 on the first
// rows0 rows of workgroups, the others job 1 (x - split) on the first rows1.
struct PairParams {
    job0: Params,
    job1: Params,
    split: u32,
    rows0: u32,
    rows1: u32,
    _pad: u32,
}

@group(0) @binding(4) var<uniform> pp: PairParams;
";

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
const COMMON: &str = include_str!("../../shaders/matmul_common.wgsl");

/// The paired form of `single`: the checked-in module `shader` (generated from `single`'s WGSL
/// by [`pair_source`]), its entry point, and `slots` ([`pair_slots`] of `single`'s).
pub(crate) fn pair_kernel(single: &Kernel, shader: &'static Shader, slots: &'static [(u32, Slot)]) -> Kernel {
    Kernel {
        shader,
        entry: PAIR_ENTRIES
            .iter()
            .find(|(e, _)| *e == single.entry)
            .map(|&(_, pair)| pair)
            .expect("every matmul kernel has a paired entry point"),
        slots,
    }
}

/// Each matmul entry point and its paired form's ([`pair_entry`]).
const PAIR_ENTRIES: [(&str, &str); 4] = [
    ("matmul", "matmul_pair"),
    ("matmul_block", "matmul_block_pair"),
    ("matmul_rows", "matmul_rows_pair"),
    ("matmul_rows_subgroup", "matmul_rows_subgroup_pair"),
];

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
/// The pair module's entry point for the single kernel `entry`.
fn pair_entry(entry: &str) -> String {
    format!("{entry}_pair")
}

/// The binding layout of the pair: the single kernel's, then its storage slots again moved up by
/// [`SECOND_JOB_BINDINGS`] (the uniform is shared).
pub(crate) fn pair_slots(single: &[(u32, Slot)]) -> Vec<(u32, Slot)> {
    let second = single
        .iter()
        .filter(|(_, s)| *s != Slot::Uniform)
        .map(|&(b, s)| (b + SECOND_JOB_BINDINGS, s));
    single.iter().copied().chain(second).collect()
}

/// The name of override constant `name` in job `job`'s copy (the host sets both).
pub(crate) fn job_constant(name: &str, job: usize) -> &'static str {
    match (name, job) {
        ("TRANS_A", 0) => "TRANS_A_0",
        ("TRANS_A", _) => "TRANS_A_1",
        ("TRANS_B", 0) => "TRANS_B_0",
        ("TRANS_B", _) => "TRANS_B_1",
        ("BIAS_GRAD", 0) => "BIAS_GRAD_0",
        ("BIAS_GRAD", _) => "BIAS_GRAD_1",
        ("VEC_A", 0) => "VEC_A_0",
        ("VEC_A", _) => "VEC_A_1",
        ("VEC_B", 0) => "VEC_B_0",
        ("VEC_B", _) => "VEC_B_1",
        _ => unreachable!("matmul kernels have no override constant {name}"),
    }
}

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
/// The entry point of a kernel text: its name, `@workgroup_size`, and its parameters as
/// `(builtin, name)`.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    name: String,
    size: [u32; 3],
    builtins: Vec<(String, String)>,
}

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
/// WGSL running two jobs of the kernel in `kernel` (the matmul common part and one kernel file,
/// entry point `entry`) in one launch; `prelude` (activations, `Params`) is included once (the
/// checked-in modules leave it out: the host prepends it, as to every matmul module).
pub(crate) fn pair_source(prelude: &str, kernel: &str, entry: &str) -> String {
    let mut out = String::from(prelude);
    out.push_str(PAIR_PARAMS);
    let mut found = None;
    for job in 0..2 {
        let (text, e) = job_copy(kernel, job);
        out.push_str(&text);
        found = Some(e);
    }
    let e = found.expect("two copies");
    assert_eq!(e.name, entry, "the kernel's entry point");
    let [x, y, z] = e.size;
    // The wrapper takes the builtins the kernel takes (and the local id to derive a global one).
    let uses = |b: &str| e.builtins.iter().any(|(builtin, _)| builtin == b);
    let mut params = vec!["@builtin(workgroup_id) pair_wid: vec3<u32>".to_string()];
    if uses("local_invocation_id") || uses("global_invocation_id") {
        params.push("@builtin(local_invocation_id) pair_lid: vec3<u32>".into());
    }
    if uses("local_invocation_index") {
        params.push("@builtin(local_invocation_index) pair_index: u32".into());
    }
    if uses("subgroup_invocation_id") {
        params.push("@builtin(subgroup_invocation_id) pair_sid: u32".into());
    }
    let call = |w: &str| {
        e.builtins
            .iter()
            .map(|(builtin, _)| match builtin.as_str() {
                "workgroup_id" => w.to_string(),
                "local_invocation_id" => "pair_lid".to_string(),
                "local_invocation_index" => "pair_index".to_string(),
                "subgroup_invocation_id" => "pair_sid".to_string(),
                "global_invocation_id" => format!("{w} * vec3<u32>({x}u, {y}u, {z}u) + pair_lid"),
                other => unreachable!("matmul kernels take no builtin {other}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = write!(
        out,
        "
@compute @workgroup_size({x}, {y}, {z})
fn {pair}(
    {params},
) {{
    if pair_wid.x < pp.split {{
        if pair_wid.y < pp.rows0 {{
            {entry}_0({first});
        }}
    }} else {{
        let w = vec3<u32>(pair_wid.x - pp.split, pair_wid.y, pair_wid.z);
        if w.y < pp.rows1 {{
            {entry}_1({second});
        }}
    }}
}}
",
        pair = pair_entry(entry),
        params = params.join(",\n    "),
        first = call("pair_wid"),
        second = call("w"),
    );
    out
}

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
/// Job `job`'s copy of `kernel` (comments dropped), and its entry point as it was declared.
fn job_copy(kernel: &str, job: usize) -> (String, Entry) {
    let text: String = kernel
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .filter(|l| !l.contains("var<uniform> p:"))
        // Workgroup memory is declared once, by the first copy, and shared.
        .filter(|l| job == 0 || !l.starts_with("var<workgroup>"))
        .collect::<Vec<_>>()
        .join("\n");
    let (text, entry) = plain_entry(&text);
    let text = shift_bindings(&text, job as u32 * SECOND_JOB_BINDINGS);
    let names = module_names(&text);
    let rename = |ident: &str| -> Option<String> {
        if ident == "p" {
            Some(format!("pp.job{job}"))
        } else {
            names.iter().any(|n| n == ident).then(|| format!("{ident}_{job}"))
        }
    };
    (rename_identifiers(&text, rename), entry)
}

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
/// Turns the `@compute` entry point into a plain function taking its builtins as arguments.
fn plain_entry(text: &str) -> (String, Entry) {
    let at = text.find("@compute").expect("a compute entry point");
    let fn_at = at + text[at..].find("fn ").expect("fn after @compute");
    let attrs = &text[at..fn_at];
    let size_args = between(attrs, "@workgroup_size(", ")").expect("@workgroup_size");
    let mut size = [1u32; 3];
    for (slot, arg) in size
        .iter_mut()
        .zip(size_args.split(',').map(str::trim).filter(|a| !a.is_empty()))
    {
        *slot = arg.trim_end_matches('u').parse().expect("a literal workgroup size");
    }
    let open = fn_at + text[fn_at..].find('(').expect("parameters");
    let close = open + matching_paren(&text[open..]);
    let name = text[fn_at + 3..open].trim().to_string();
    let mut builtins = Vec::new();
    let mut params = Vec::new();
    for param in text[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let builtin = between(param, "@builtin(", ")").expect("entry parameters are builtins");
        let rest = param[param.find(')').expect(")") + 1..].trim();
        let ident = rest.split(':').next().expect("a name").trim();
        builtins.push((builtin.trim().to_string(), ident.to_string()));
        params.push(rest.to_string());
    }
    let plain = format!("{}fn {name}({}){}", &text[..at], params.join(", "), &text[close + 1..]);
    (plain, Entry { name, size, builtins })
}

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
/// The index of the `)` matching the `(` that `text` starts with.
fn matching_paren(text: &str) -> usize {
    let mut depth = 0;
    for (i, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses")
}

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
fn between<'t>(text: &'t str, open: &str, close: &str) -> Option<&'t str> {
    let start = text.find(open)? + open.len();
    let end = start + text[start..].find(close)?;
    Some(&text[start..end])
}

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
/// Adds `by` to every `@binding(N)`.
fn shift_bindings(text: &str, by: u32) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("@binding(") {
        let start = at + "@binding(".len();
        let end = start + rest[start..].find(')').expect("@binding(N)");
        let n: u32 = rest[start..end].trim().parse().expect("a binding number");
        out.push_str(&rest[..start]);
        out.push_str(&(n + by).to_string());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
/// The names declared at module scope (unindented lines): functions, constants, overrides and
/// bindings. Workgroup variables are left shared.
fn module_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with([' ', '\t'])) {
        let mut rest = line.trim();
        while let Some(attr) = rest.strip_prefix('@') {
            // An attribute: a word, with or without arguments.
            let word_end = attr
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(attr.len());
            rest = &attr[word_end..];
            if rest.starts_with('(') {
                rest = &rest[matching_paren(rest) + 1..];
            }
            rest = rest.trim_start();
        }
        let ident_after = |s: &str| -> Option<String> {
            let s = s.trim_start();
            let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
            (end > 0).then(|| s[..end].to_string())
        };
        let name = if let Some(r) = rest.strip_prefix("fn ") {
            ident_after(r)
        } else if let Some(r) = rest.strip_prefix("override ").or_else(|| rest.strip_prefix("const ")) {
            ident_after(r)
        } else if let Some(r) = rest.strip_prefix("var") {
            match r.strip_prefix('<') {
                Some(space) if space.starts_with("workgroup") => None,
                Some(space) => ident_after(&space[space.find('>').expect("var<…>") + 1..]),
                None => ident_after(r),
            }
        } else {
            None
        };
        names.extend(name);
    }
    names
}

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
/// Replaces each identifier `rename` maps, except member names (after `.`) and attribute names
/// (after `@`). Numeric literals are skipped whole, so a suffix like `0u` is not an identifier.
fn rename_identifiers(text: &str, rename: impl Fn(&str) -> Option<String>) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut i = 0;
    let mut prev = b' ';
    while i < bytes.len() {
        let ch = bytes[i];
        if ch.is_ascii_alphabetic() || ch == b'_' || ch.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || (ch.is_ascii_digit() && bytes[i] == b'.'))
            {
                i += 1;
            }
            let word = &text[start..i];
            match rename(word).filter(|_| !ch.is_ascii_digit() && prev != b'.' && prev != b'@') {
                Some(new) => out.push_str(&new),
                None => out.push_str(word),
            }
            prev = bytes[i - 1];
        } else {
            // Multi-byte characters are copied whole (comments are gone; this is for safety).
            let len = text[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..i + len]);
            if !ch.is_ascii_whitespace() {
                prev = ch;
            }
            i += len;
        }
    }
    out
}

#[cfg(test)] // The generator: run by `generated_pair_modules_are_up_to_date`.
/// The first lines of a generated paired module.
pub(crate) fn generated_header(single_file: &str) -> String {
    format!(
        "// Generated from {single_file} by src/gpu/matmul_pair.rs (pair_source): do not edit.\n\
         // `cargo test generated_pair_modules` checks it; SHADERGRAD_BLESS=1 rewrites it.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every checked-in paired module is what [`pair_source`] makes of its kernel now.
    #[test]
    fn generated_pair_modules_are_up_to_date() {
        let shaders = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let bless = std::env::var_os("SHADERGRAD_BLESS").is_some_and(|v| !v.is_empty());
        for (single, kernel_file, output) in crate::gpu::matmul::PAIR_SOURCES {
            let single_file = single.shader.name;
            let fresh = generated_header(single_file) + &pair_source("", &[COMMON, kernel_file].concat(), single.entry);
            let path = shaders.join(output);
            if bless {
                std::fs::write(&path, &fresh).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == fresh,
                "shaders/{output} differs from what pair_source makes of {single_file}: run \
                 SHADERGRAD_BLESS=1 cargo test generated_pair_modules"
            );
            let entry = PAIR_ENTRIES.iter().find(|(e, _)| *e == single.entry).unwrap().1;
            assert_eq!(entry, pair_entry(single.entry));
        }
    }

    const TOY: &str = "
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
override TRANS_A: bool = false;
const TILE: u32 = 4u; // a comment naming c and p
var<workgroup> tile: array<f32, 4>;

fn load(i: u32) -> f32 {
    return a[p.a_offset + i * TILE] + 1.0e0;
}

@compute @workgroup_size(8, 8, 1)
fn toy(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    for (var c = 0u; c < 2u; c++) {
        tile[c] = load(gid.x + c);
    }
    c[wid.x] = tile[0];
}
";

    #[test]
    fn a_copy_renames_module_names_shifts_bindings_and_points_p_at_its_job() {
        let (copy, entry) = job_copy(TOY, 1);
        assert_eq!(entry.name, "toy");
        assert_eq!(entry.size, [8, 8, 1]);
        assert_eq!(
            entry.builtins,
            vec![
                ("global_invocation_id".to_string(), "gid".to_string()),
                ("workgroup_id".to_string(), "wid".to_string())
            ]
        );
        assert!(copy.contains("@group(0) @binding(8) var<storage, read> a_1: array<f32>;"));
        assert!(copy.contains("@binding(11) var<storage, read_write> c_1"));
        assert!(!copy.contains("var<uniform>"), "the job's uniform is the pair's");
        assert!(copy.contains("override TRANS_A_1: bool"));
        assert!(copy.contains("return a_1[pp.job1.a_offset + i * TILE_1] + 1.0e0;"));
        // A local that shadows a binding is renamed with it, consistently.
        assert!(copy.contains("for (var c_1 = 0u; c_1 < 2u; c_1++)"));
        assert!(
            copy.contains("tile[c_1] = load_1(gid.x + c_1);"),
            "workgroup memory is shared"
        );
        assert!(copy.contains("fn toy_1(gid: vec3<u32>, wid: vec3<u32>)"));
        assert!(!copy.contains("@compute") && !copy.contains("comment"));
    }

    #[test]
    fn the_pair_entry_gives_each_copy_its_own_grid() {
        let src = pair_source("struct Params { a_offset: u32 }\n", TOY, "toy");
        assert!(src.contains("fn toy_pair("));
        assert!(src.contains("toy_0(pair_wid * vec3<u32>(8u, 8u, 1u) + pair_lid, pair_wid);"));
        assert!(src.contains("toy_1(w * vec3<u32>(8u, 8u, 1u) + pair_lid, w);"));
        assert_eq!(src.matches("struct Params").count(), 1);
        assert_eq!(src.matches("var<workgroup> tile").count(), 1, "declared once, shared");
    }
}
