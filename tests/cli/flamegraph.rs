//! `dynostats flamegraph`: a known call tree written with the library,
//! drawn by the binary; the SVG parses as XML and holds every scope with
//! a width proportional to its weighted inclusive amount; the folded
//! stacks (plain, per endpoint, differential) equal the stacks computed
//! here from the nodes; damaged, empty and foreign inputs behave as in
//! `dynostats report`.

use std::collections::BTreeMap;
use std::fs;
use std::process::Output;

use dynostats::Record;

use crate::cli;
use cli::{profile, run, text, write};

/// `scale` multiplies `tax`'s amounts under `price` (a regression there).
fn known(scale: i64) -> Vec<Record> {
    let tax = 300 * scale;
    vec![
        profile(
            "/checkout",
            10,
            "instructions",
            50,
            &[
                ("/checkout", None, 1, 700 + tax, 100),
                ("price", Some(0), 2, 300 + tax, 200),
                ("tax", Some(1), 3, tax, tax),
                ("fib", Some(1), 1, 100, 40),
                ("fib", Some(3), 1, 60, 60),
                ("tax", Some(0), 1, 250, 250),
            ],
        ),
        profile(
            "/search",
            5,
            "instructions",
            0,
            &[
                ("/search", None, 1, 400, 100),
                ("tax", Some(0), 2, 300, 300),
            ],
        ),
    ]
}

/// inferno's SVG carries the SVG 1.1 DOCTYPE: parse with the DTD allowed.
fn parse(svg: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(svg, options).expect("the SVG is XML")
}

/// Every frame of an SVG flame graph (a `<g>` holding a `<title>` "NAME
/// (AMOUNT ...)" and a `<rect>`): its name and the value of `attribute` on
/// its `<rect>`.
pub(crate) fn frame_attribute(svg: &str, attribute: &str) -> Vec<(String, String)> {
    let doc = parse(svg);
    let mut frames = Vec::new();
    for g in doc.descendants().filter(|n| n.has_tag_name("g")) {
        let title = g.children().find(|c| c.has_tag_name("title"));
        let rect = g.children().find(|c| c.has_tag_name("rect"));
        let (Some(title), Some(rect)) = (title, rect) else {
            continue;
        };
        let title = title.text().unwrap_or_default();
        let Some((name, _)) = title.rsplit_once(" (") else {
            continue;
        };
        frames.push((
            name.to_string(),
            rect.attribute(attribute).unwrap().to_string(),
        ));
    }
    frames
}

/// Every frame of an SVG flame graph: (name, width in percent).
pub(crate) fn frames(svg: &str) -> Vec<(String, f64)> {
    frame_attribute(svg, "width")
        .into_iter()
        .map(|(name, width)| (name, width.trim_end_matches('%').parse().unwrap()))
        .collect()
}

/// Per full path from the root: (weighted exclusive, weighted inclusive),
/// computed from the nodes.
fn paths(records: &[Record]) -> BTreeMap<Vec<String>, (i64, i64)> {
    let mut paths: BTreeMap<Vec<String>, (i64, i64)> = BTreeMap::new();
    for r in records {
        let nodes = &r.detail.as_ref().unwrap().nodes;
        for (i, n) in nodes.iter().enumerate() {
            let mut path = vec![n.name.clone()];
            let mut at = n.parent;
            while let Some(p) = at {
                path.push(nodes[p as usize].name.clone());
                at = nodes[p as usize].parent;
            }
            path.reverse();
            let e = paths.entry(path).or_default();
            e.0 += r.weight as i64 * n.exclusive;
            e.1 += r.weight as i64 * n.inclusive;
            let _ = i;
        }
    }
    paths
}

fn folded(paths: &BTreeMap<Vec<String>, (i64, i64)>) -> String {
    paths
        .iter()
        .filter(|(_, (exclusive, _))| *exclusive > 0)
        .map(|(path, (exclusive, _))| format!("{} {exclusive}\n", path.join(";")))
        .collect()
}

#[test]
fn folded_output_equals_the_expected_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known.msgpack");
    let records = known(1);
    write(&path, &records);
    let path = path.to_str().unwrap();
    let want = folded(&paths(&records));
    assert!(want.contains("/checkout;price;fib;fib 600\n"), "{want}");

    let out = run(&["flamegraph", "--folded", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), want);

    // To a file with -o, the same bytes.
    let file = dir.path().join("out.folded");
    let out = run(&["flamegraph", "--folded", "-o", file.to_str().unwrap(), path]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(fs::read_to_string(&file).unwrap(), want);

    // One endpoint only.
    let search: Vec<Record> = records
        .iter()
        .filter(|r| r.name == "/search")
        .cloned()
        .collect();
    let out = run(&["flamegraph", "--folded", "--endpoint", "/search", path]);
    assert_eq!(text(&out.stdout), folded(&paths(&search)));
}

#[test]
fn the_svg_parses_and_holds_each_scope_as_wide_as_its_inclusive_amount() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known.msgpack");
    let records = known(1);
    write(&path, &records);
    let svg_path = dir.path().join("out.svg");
    let out = run(&[
        "flamegraph",
        "-o",
        svg_path.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let svg = fs::read_to_string(&svg_path).unwrap();

    // Every frame: a <g> with a <title> "NAME (AMOUNT instructions, P%)"
    // and a <rect> whose width is its share of the image.
    let frames = frames(&svg);
    let all = frames
        .iter()
        .find(|(n, _)| n == "all endpoints and regions")
        .expect("the root frame, named")
        .1;
    let paths = paths(&records);
    // The whole: every positive exclusive amount (the root's overhead is
    // not drawn).
    let drawn: i64 = paths.values().map(|(e, _)| (*e).max(0)).sum();
    for (path, (_, inclusive)) in &paths {
        let name = path.last().unwrap();
        // A frame is as wide as what is drawn under it: its inclusive
        // amount, less the profiler's overhead for a root.
        let amount = if path.len() == 1 {
            let overhead: i64 = records
                .iter()
                .filter(|r| r.name == *name)
                .map(|r| r.weight as i64 * r.detail.as_ref().unwrap().overhead.unwrap())
                .sum();
            inclusive - overhead
        } else {
            *inclusive
        };
        let want = all * amount as f64 / drawn as f64;
        assert!(
            frames
                .iter()
                .any(|(n, w)| n == name && (w - want).abs() < 0.01),
            "{path:?}: no frame {name} of width {want:.4} in {frames:?}"
        );
    }
    assert!(svg.contains("instructions"));
}

#[test]
fn diff_draws_a_differential_graph_from_folded_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.msgpack");
    let candidate = dir.path().join("candidate.msgpack");
    write(&base, &known(1));
    write(&candidate, &known(2));
    let (base, candidate) = (base.to_str().unwrap(), candidate.to_str().unwrap());

    let out = run(&["flamegraph", "--folded", candidate, "--diff", base]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let before = paths(&known(1));
    let after = paths(&known(2));
    let mut want = Vec::new();
    for (path, (e, _)) in &after {
        let b = before.get(path).map_or(0, |x| x.0);
        if *e > 0 || b > 0 {
            want.push(format!("{} {} {}", path.join(";"), b.max(0), (*e).max(0)));
        }
    }
    let mut got: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(got.contains(&"/checkout;price;tax 3000 6000".to_string()));

    let svg = dir.path().join("diff.svg");
    let out = run(&[
        "flamegraph",
        "-o",
        svg.to_str().unwrap(),
        candidate,
        "--diff",
        base,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let svg = fs::read_to_string(&svg).unwrap();
    parse(&svg);
    // The grown frame carries its change, as a share of the candidate's
    // whole, and against its own base amount, in its title.
    let whole: i64 = after.values().map(|(e, _)| (*e).max(0)).sum();
    let title = format!(
        "tax (6,000 instructions, {:.2}%; {:+.2}% of the graph, own amount +100.0%: ",
        100.0 * 6000.0 / whole as f64,
        100.0 * 3000.0 / whole as f64
    );
    assert!(svg.contains(&title), "{title} not in the SVG");
    // The subtitle says what that percentage is.
    assert!(
        svg.contains("a tooltip&apos;s +x% is the frame&apos;s own")
            || svg.contains("a tooltip's +x% is the frame's own")
    );
}

/// The base and the candidate sit where `compare` has them: `BASE...
/// --against CAND...`; the earlier `CAND --diff BASE` (and `--diff BASE
/// CAND`, which used to fail) give the same stacks; `--diff` with more
/// files than one a side is refused, saying the spelling.
#[test]
fn the_sides_of_a_differential_graph_are_those_of_compare() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.msgpack");
    let candidate = dir.path().join("candidate.msgpack");
    write(&base, &known(1));
    write(&candidate, &known(2));
    let (base, candidate) = (base.to_str().unwrap(), candidate.to_str().unwrap());
    let want = text(&run(&["flamegraph", "--folded", base, "--against", candidate]).stdout);
    assert!(want.contains("/checkout;price;tax 3000 6000\n"), "{want}");
    for args in [
        vec!["flamegraph", "--folded", "--against", candidate, "--", base],
        vec!["flamegraph", "--folded", candidate, "--diff", base],
        vec!["flamegraph", "--folded", "--diff", base, candidate],
    ] {
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), want, "{args:?}");
    }
    // The form that failed with "required arguments were not provided".
    let svg = dir.path().join("x.svg");
    let out = run(&[
        "flamegraph",
        "--diff",
        base,
        candidate,
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(fs::read_to_string(&svg).unwrap().contains(" against "));
    for args in [
        vec!["flamegraph", "--folded", "--diff", base, base, candidate],
        vec![
            "flamegraph",
            "--folded",
            candidate,
            "--diff",
            base,
            "--diff",
            base,
        ],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(
            text(&out.stderr).contains("BASE... --against CAND..."),
            "{}",
            text(&out.stderr)
        );
    }
    let out = run(&["flamegraph", "--folded", "--normalize", base]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--against"));
}

/// `n` profile records of `/checkout` (weight 10): `price` costs about
/// `price` instructions, `render` about 500, each ±20% (seeded).
fn noisy(n: usize, price: f64, seed: u64) -> Vec<Record> {
    let mut rng = crate::rng::Rng(seed);
    (0..n)
        .map(|_| {
            let x = (price * (0.8 + 0.4 * rng.uniform())) as i64;
            let y = (500.0 * (0.8 + 0.4 * rng.uniform())) as i64;
            profile(
                "/checkout",
                10,
                "instructions",
                0,
                &[
                    ("/checkout", None, 1, 100 + x + y, 100),
                    ("price", Some(0), 1, x, x),
                    ("render", Some(0), 1, y, y),
                ],
            )
        })
        .collect()
}

/// Every frame of a flame graph: (name, fill).
fn fills(svg: &str) -> BTreeMap<String, String> {
    frame_attribute(svg, "fill").into_iter().collect()
}

/// A differential graph colours a change beyond its noise, and greys
/// the changes within it: two samples of the same code are not painted
/// red and blue.
#[test]
fn differential_colours_follow_the_noise() {
    let dir = tempfile::tempdir().unwrap();
    let draw = |base: &[Record], cand: &[Record], name: &str| -> (String, String) {
        let (b, c) = (
            dir.path().join(format!("{name}-base")),
            dir.path().join(format!("{name}-cand")),
        );
        write(&b, base);
        write(&c, cand);
        let svg = dir.path().join(format!("{name}.svg"));
        let out = run(&[
            "flamegraph",
            b.to_str().unwrap(),
            "--against",
            c.to_str().unwrap(),
            "-o",
            svg.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        (fs::read_to_string(&svg).unwrap(), text(&out.stderr))
    };
    let grey = "rgb(215,215,215)";
    // The same code, twice: every changed frame grey.
    let (svg, said) = draw(&noisy(300, 1000.0, 1), &noisy(300, 1000.0, 2), "same");
    let f = fills(&svg);
    assert_eq!(f["price"], grey, "{f:?}");
    assert_eq!(f["render"], grey, "{f:?}");
    assert!(said.contains("0 frames changed beyond noise"), "{said}");
    assert!(svg.contains("grey: within noise"));
    // price grew by 20%: red, saturated (the largest change); render grey.
    let (svg, said) = draw(&noisy(300, 1000.0, 1), &noisy(300, 1200.0, 2), "grew");
    let f = fills(&svg);
    assert_eq!(f["price"], "rgb(255,100,100)", "{f:?}");
    assert_eq!(f["render"], grey, "{f:?}");
    assert!(said.contains("1 frames changed beyond noise"), "{said}");
    assert!(svg.contains("grew beyond noise)</title>"));
    // And the other way: blue.
    let (svg, _) = draw(&noisy(300, 1200.0, 1), &noisy(300, 1000.0, 2), "shrank");
    assert_eq!(fills(&svg)["price"], "rgb(100,100,255)");
}

/// Text elements of the SVG that inferno centres or that the finishing
/// added: (text, x in pixels of its centre, font size).
fn centred_texts(svg: &str) -> (f64, Vec<(String, f64, f64)>) {
    let doc = parse(svg);
    let root = doc.root_element();
    let width: f64 = root.attribute("width").unwrap().parse().unwrap();
    let mut texts = Vec::new();
    for t in doc.descendants().filter(|n| n.has_tag_name("text")) {
        let id = t.attribute("id").unwrap_or_default();
        let class = t.attribute("class").unwrap_or_default();
        let size = match (id, class) {
            ("title", _) => 17.0,
            ("subtitle", _) | (_, "subtitle") => 12.0,
            _ => continue,
        };
        let x = t.attribute("x").unwrap();
        let x = match x.strip_suffix('%') {
            Some(p) => width * p.parse::<f64>().unwrap() / 100.0,
            None => x.parse().unwrap(),
        };
        texts.push((t.text().unwrap_or_default().to_string(), x, size));
    }
    (width, texts)
}

/// The unit line of a flame graph of CPU time (no PMU) is inside the
/// image: each centred line, at 0.6 of its font size per character
/// (DejaVu Sans Mono's 0.602 rounded up), fits the width; the title names
/// the metric and the input; rendered by rsvg-convert where installed
/// (required with DYNOSTATS_REQUIRE_RSVG=1).
#[test]
fn the_unit_line_fits_inside_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.msgpack");
    let mut records = known(1);
    for r in &mut records {
        let detail = r.detail.as_mut().unwrap();
        detail.timer = Some("cpu_ns".into());
        detail.timer_requested = Some("instructions".into());
        detail.timer_fallback = Some(
            "no hardware PMU: this looks like a VM without a virtual PMU, or a CPU whose PMU \
             the kernel does not support (ENOENT)"
                .into(),
        );
    }
    write(&path, &records);
    for width in ["1200", "600"] {
        let svg_path = dir.path().join(format!("out-{width}.svg"));
        let out = run(&[
            "flamegraph",
            "--width",
            width,
            "-o",
            svg_path.to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{said}");
        assert!(
            said.contains(&format!("wrote {}", svg_path.to_str().unwrap())),
            "{said}"
        );
        assert!(said.contains("inclusive cpu_ns"), "{said}");
        let svg = fs::read_to_string(&svg_path).unwrap();
        let (image, texts) = centred_texts(&svg);
        assert!(texts.len() >= 3, "{texts:?}");
        for (line, centre, size) in &texts {
            let half = line.chars().count() as f64 * size * 0.6 / 2.0;
            assert!(
                centre - half >= 0.0 && centre + half <= image,
                "{line:?} spans {:.0}..{:.0} px of {image}",
                centre - half,
                centre + half
            );
        }
        let all: String = texts
            .iter()
            .map(|t| t.0.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(all.contains("CPU time (cpu_ns), not instructions"), "{all}");
        assert!(all.contains("(ENOENT)"), "{all}");
        assert!(
            texts[0].0.starts_with("CPU time (cpu_ns), inclusive — "),
            "{:?}",
            texts[0]
        );
        assert!(
            width == "600" || texts[0].0.ends_with("requests.msgpack"),
            "{:?}",
            texts[0]
        );
        render(&svg_path, image);
    }
}

/// Renders `svg` to PNG with rsvg-convert and checks the image: a PNG
/// `width` pixels wide. Skipped, said loudly, without rsvg-convert unless
/// DYNOSTATS_REQUIRE_RSVG=1.
fn render(svg: &std::path::Path, width: f64) {
    let png = svg.with_extension("png");
    let out = std::process::Command::new("rsvg-convert")
        .arg(svg)
        .arg("-o")
        .arg(&png)
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            assert!(
                std::env::var("DYNOSTATS_REQUIRE_RSVG").as_deref() != Ok("1"),
                "rsvg-convert is required (DYNOSTATS_REQUIRE_RSVG=1) but cannot run: {e}"
            );
            eprintln!(
                "SKIPPED: rendering the flame graph to PNG: rsvg-convert cannot run ({e}); \
                 install librsvg2-bin"
            );
            return;
        }
    };
    assert!(out.status.success(), "rsvg-convert: {}", text(&out.stderr));
    let bytes = fs::read(&png).unwrap();
    assert!(bytes.len() > 2_000, "a {} byte PNG", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let png_width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    assert_eq!(f64::from(png_width), width);
}

/// `report` and `flamegraph --folded` on `path`: the same exit status and
/// the same lines about the file on stderr.
fn same_as_report(path: &str) -> Output {
    let report = run(&["report", path]);
    let flame = run(&["flamegraph", "--folded", path]);
    assert_eq!(flame.status.code(), report.status.code(), "{path}");
    let about_file = |o: &Output| -> Vec<String> {
        text(&o.stderr)
            .lines()
            .filter(|l| {
                !l.contains("no profile records")
                    && !l.contains("profile records (call trees) read")
                    && !l.starts_with("dynostats: wrote ")
            })
            .map(String::from)
            .collect()
    };
    assert_eq!(about_file(&flame), about_file(&report), "{path}");
    flame
}

#[test]
fn damaged_empty_and_foreign_inputs_behave_as_in_report() {
    let dir = tempfile::tempdir().unwrap();
    let records = known(1);
    let cut = dir.path().join("cut.msgpack");
    let mut bytes: Vec<u8> = records.iter().flat_map(|r| r.to_msgpack()).collect();
    bytes.truncate(bytes.len() - records[1].to_msgpack().len() / 2);
    fs::write(&cut, &bytes).unwrap();
    let out = same_as_report(cut.to_str().unwrap());
    assert_eq!(out.status.code(), Some(3));
    // What came before the damage is drawn.
    assert_eq!(text(&out.stdout), folded(&paths(&records[..1])));

    let empty = dir.path().join("empty.msgpack");
    fs::write(&empty, b"").unwrap();
    let out = same_as_report(empty.to_str().unwrap());
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("no profile records in the inputs"));
    // No SVG is written from nothing.
    let svg = dir.path().join("empty.svg");
    run(&[
        "flamegraph",
        "-o",
        svg.to_str().unwrap(),
        empty.to_str().unwrap(),
    ]);
    assert!(!svg.exists());

    let notes = dir.path().join("notes.txt");
    fs::write(&notes, b"GET /checkout 200 12ms\n").unwrap();
    assert_ne!(
        same_as_report(notes.to_str().unwrap()).status.code(),
        Some(0)
    );
    let foreign = dir.path().join("foreign.msgpack");
    let mut bytes = vec![0x81, 0xa3, b'f', b'o', b'o', 0x01];
    bytes.extend(records[1].to_msgpack());
    fs::write(&foreign, &bytes).unwrap();
    let out = same_as_report(foreign.to_str().unwrap());
    assert_eq!(text(&out.stdout), folded(&paths(&records[1..])));
    let missing = same_as_report(dir.path().join("missing").to_str().unwrap());
    assert_eq!(missing.status.code(), Some(1));
    // The error alone: no "no profile records" after it, nothing drawn.
    assert_eq!(
        text(&missing.stderr).lines().count(),
        1,
        "{}",
        text(&missing.stderr)
    );
    assert!(missing.stdout.is_empty());
    let svg = dir.path().join("missing.svg");
    let out = run(&[
        "flamegraph",
        "-o",
        svg.to_str().unwrap(),
        notes.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(!svg.exists());
    let said = text(&out.stderr);
    assert!(said.contains("not a dynostats record file"), "{said}");
    assert!(!said.contains("no profile records"), "{said}");
}
