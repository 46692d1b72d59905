//! Feed arbitrary text to the Dockerfile parser, then every raw word it produces to `expand`.
//! Neither may panic; parse errors must point into the text.

#![no_main]

use build::dockerfile::{expand, parse, Command, Dockerfile, Healthcheck, Instruction, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse(&text) {
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(e.loc.line >= 1 && e.loc.line <= lines && e.loc.col >= 1, "bad location in {e}");
        }
        Ok(dockerfile) => expand_all(&dockerfile),
    }
});

/// Expand every raw word of every instruction, with both escape characters.
fn expand_all(dockerfile: &Dockerfile) {
    let mut words = Vec::new();
    for instruction in dockerfile.meta_args.iter().chain(
        dockerfile
            .stages
            .iter()
            .flat_map(|s| std::iter::once(&s.from).chain(&s.instructions)),
    ) {
        raw_words(instruction, &mut words);
    }
    let lookup = |name: &str| match name {
        "a" => Some("value with * and ? and /".to_string()),
        "empty" => Some(String::new()),
        "1" | "@" => Some("special".to_string()),
        _ => None,
    };
    for word in words {
        for escape in [dockerfile.escape, '\\', '`'] {
            let _ = expand(word, escape, &lookup);
        }
    }
}

fn raw_words<'a>(instruction: &'a Instruction, out: &mut Vec<&'a str>) {
    let command = |c: &'a Command, out: &mut Vec<&'a str>| match c {
        Command::Shell(s) => out.push(s),
        Command::Exec(v) => out.extend(v.iter().map(String::as_str)),
    };
    out.push(&instruction.source);
    match &instruction.kind {
        Kind::From(f) => out.extend(
            [Some(&f.image), f.name.as_ref(), f.platform.as_ref()]
                .into_iter()
                .flatten()
                .map(String::as_str),
        ),
        Kind::Run(run) => {
            command(&run.command, out);
            out.extend(run.heredocs.iter().map(|h| h.content.as_str()));
            out.extend(run.network.as_deref());
        }
        Kind::Cmd(c) | Kind::Entrypoint(c) => command(c, out),
        Kind::Shell(v) | Kind::Expose(v) | Kind::Volume(v) => out.extend(v.iter().map(String::as_str)),
        Kind::Label(pairs) | Kind::Env(pairs) => out.extend(pairs.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()])),
        Kind::User(s) | Kind::Workdir(s) | Kind::Stopsignal(s) | Kind::Maintainer(s) => out.push(s),
        Kind::Arg(args) => out.extend(
            args.iter()
                .flat_map(|a| std::iter::once(a.name.as_str()).chain(a.default.as_deref())),
        ),
        Kind::Onbuild(inner) => raw_words(inner, out),
        Kind::Healthcheck(Healthcheck::None) => {}
        Kind::Healthcheck(Healthcheck::Check { command: c, .. }) => command(c, out),
        Kind::Copy(copy) | Kind::Add(copy) => {
            out.extend(copy.sources.iter().map(String::as_str));
            out.push(&copy.dest);
            out.extend(
                [&copy.from, &copy.chown, &copy.chmod, &copy.checksum]
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
            );
            out.extend(copy.heredocs.iter().map(|h| h.content.as_str()));
        }
    }
}
