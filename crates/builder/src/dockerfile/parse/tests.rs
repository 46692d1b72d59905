//! Unit tests of the parser.

use super::*;

fn parse_ok(text: &str) -> Dockerfile {
    parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(d) => panic!("{text:?} parsed: {d:?}"),
        Err(e) => e.to_string(),
    }
}

/// The instructions of the stage `FROM scratch` + `lines`.
fn body(lines: &str) -> Vec<Instruction> {
    parse_ok(&format!("FROM scratch\n{lines}")).stages.remove(0).instructions
}

/// The only instruction after `FROM scratch`.
fn kind(lines: &str) -> Kind {
    let mut instructions = body(lines);
    assert_eq!(instructions.len(), 1, "{lines:?}: {instructions:?}");
    instructions.remove(0).kind
}

/// The error for `lines` after `FROM scratch` (so they start on line 2).
fn body_error(lines: &str) -> String {
    error(&format!("FROM scratch\n{lines}"))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn shell(s: &str) -> Command {
    Command::Shell(s.to_string())
}

fn exec(v: &[&str]) -> Command {
    Command::Exec(strings(v))
}

fn run(command: Command) -> Kind {
    Kind::Run(Run {
        command,
        heredocs: Vec::new(),
        network: None,
    })
}

fn heredoc(name: &str, content: &str, expand: bool) -> Heredoc {
    Heredoc {
        name: name.to_string(),
        content: content.to_string(),
        expand,
    }
}

fn copy(sources: &[&str], dest: &str) -> Copy {
    Copy {
        sources: strings(sources),
        dest: dest.to_string(),
        from: None,
        chown: None,
        chmod: None,
        link: false,
        checksum: None,
        keep_git_dir: false,
        heredocs: Vec::new(),
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn arg(name: &str, default: Option<&str>) -> ArgDef {
    ArgDef {
        name: name.to_string(),
        default: default.map(str::to_string),
    }
}

#[test]
fn parser_directives() {
    let d = parse_ok("# syntax=docker/dockerfile:1\n# escape=`\nFROM scratch\nRUN echo a `\n  b\n");
    assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(d.escape, '`');
    assert_eq!(d.stages[0].instructions[0].source, "RUN echo a   b");
    // Keys are case-insensitive; blanks around `=` and before `#` are allowed.
    let d = parse_ok("  #  ESCAPE = `\n#Syntax=x\nFROM a");
    assert_eq!((d.escape, d.syntax.as_deref()), ('`', Some("x")));
    assert_eq!(parse_ok("FROM a").syntax, None);
    // After an ordinary comment, a blank line or an instruction, a directive is a comment.
    assert_eq!(parse_ok("# hello\n# escape=`\nFROM a").escape, '\\');
    assert_eq!(parse_ok("\n# escape=`\nFROM a").escape, '\\');
    assert_eq!(parse_ok("FROM a\n# escape=`\n").escape, '\\');
    // Unknown directives are comments and end the directives; `check` is known (and ignored).
    assert_eq!(parse_ok("# foo=bar\n# escape=`\nFROM a").escape, '\\');
    assert_eq!(parse_ok("# check=skip=all\n# escape=`\nFROM a").escape, '`');
    assert_eq!(parse_ok("# escape=\nFROM a").escape, '\\');
    assert_eq!(
        error("# escape=`\n# syntax=x\n#  Escape=\\\nFROM a"),
        "Dockerfile:3:4: only one escape parser directive can be used (the first is on line 1)"
    );
    assert_eq!(
        error("# escape=x\nFROM a"),
        "Dockerfile:1:10: invalid escape token 'x': the escape directive accepts only \\ or `"
    );
    assert_eq!(
        error("# escape=\\\\\nFROM a"),
        "Dockerfile:1:10: invalid escape token '\\\\': the escape directive accepts only \\ or `"
    );
}

#[test]
fn comments_blank_lines_and_continuations() {
    let text = "\n# comment\n  FROM alpine  \n\n\tRUN apk add \\\n# a comment inside\n\n      curl \\  \n   # indented\n      git\n# end\n";
    let d = parse_ok(text);
    assert_eq!(d.stages[0].from.loc, Loc { line: 3, col: 3 });
    assert_eq!(d.stages[0].from.source, "FROM alpine");
    let instruction = &d.stages[0].instructions[0];
    let joined = format!("apk add {0}curl {0}git", " ".repeat(6));
    assert_eq!(instruction.source, format!("RUN {joined}"));
    assert_eq!(instruction.loc, Loc { line: 5, col: 2 });
    assert_eq!(instruction.kind, run(shell(&joined)));

    // An escaped escape at the end is not a continuation; blanks after the escape are fine.
    let sources: Vec<String> = body("RUN echo \\\\\nRUN a \\ \t\n b").into_iter().map(|i| i.source).collect();
    assert_eq!(sources, ["RUN echo \\\\", "RUN a  b"]);
    // A continuation at the end of the file, a lone escape line.
    assert_eq!(body("RUN x \\")[0].source, "RUN x");
    let i = &body("\\\nRUN x")[0];
    assert_eq!((i.loc, i.source.as_str()), (Loc { line: 3, col: 1 }, "RUN x"));
    // A comment line ends nothing, even with an escape at its end.
    assert_eq!(body("# a \\\nRUN x").len(), 1);
}

#[test]
fn crlf_bom_and_keyword_case() {
    let d = parse_ok("\u{feff}FROM a\r\nRUN x \\\r\n  y\r\n");
    assert_eq!(d.stages[0].instructions[0].source, "RUN x   y");
    let d = parse_ok("from a As Build\nrun echo\nCoPy x y");
    assert_eq!(d.stages[0].from().name.as_deref(), Some("build"));
    assert_eq!(d.stages[0].instructions[0].kind, run(shell("echo")));
    assert_eq!(d.stages[0].instructions[1].kind, Kind::Copy(copy(&["x"], "y")));
}

#[test]
fn sources_and_locations() {
    let text = "FROM a\n\n  RUN set -e; \\\n    # comment\n    make \\\n      install   \n";
    let i = &parse_ok(text).stages[0].instructions[0];
    assert_eq!(i.loc, Loc { line: 3, col: 3 });
    assert_eq!(i.source, format!("RUN set -e; {}make {}install", " ".repeat(4), " ".repeat(6)));
    // Errors point into continuation lines and count characters, not bytes.
    assert_eq!(
        error("FROM a\nCOPY --chown=x \\\n   --bogus=1 a b"),
        "Dockerfile:3:4: unknown flag: --bogus"
    );
    assert_eq!(
        error("FROM a\n  ENV é=1 \"ü\""),
        "Dockerfile:2:11: ENV requires <name>=<value> pairs: can't find = in \"\\\"ü\\\"\""
    );
    assert_eq!(
        error("FROM a\nCOPY \\\n  a"),
        "Dockerfile:2:1: COPY requires at least two arguments: COPY [flags] <source>... <destination>"
    );
}

#[test]
fn exec_and_shell_forms() {
    assert_eq!(kind(r#"RUN ["echo", "a b"]"#), run(exec(&["echo", "a b"])));
    assert_eq!(kind("RUN [ -f /x ] && echo yes"), run(shell("[ -f /x ] && echo yes")));
    assert_eq!(kind(r#"RUN ["unterminated""#), run(shell(r#"["unterminated""#)));
    assert_eq!(kind(r#"CMD ["a"]"#), Kind::Cmd(exec(&["a"])));
    assert_eq!(kind("CMD echo $HOME"), Kind::Cmd(shell("echo $HOME")));
    assert_eq!(kind("CMD []"), Kind::Cmd(exec(&[])));
    assert_eq!(kind(r#"CMD ["--help"]"#), Kind::Cmd(exec(&["--help"])));
    assert_eq!(
        kind(r#"ENTRYPOINT ["/bin/tool", "--flag"]"#),
        Kind::Entrypoint(exec(&["/bin/tool", "--flag"]))
    );
    assert_eq!(kind("entrypoint exec tool"), Kind::Entrypoint(shell("exec tool")));
    assert_eq!(
        kind(r#"SHELL ["powershell", "-Command"]"#),
        Kind::Shell(strings(&["powershell", "-Command"]))
    );
    assert_eq!(
        body_error(r#"CMD ["a", 1]"#),
        "Dockerfile:2:5: when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(
        body_error("SHELL /bin/bash -c"),
        "Dockerfile:2:7: SHELL requires the arguments to be in JSON array form, e.g. SHELL [\"/bin/sh\", \"-c\"]"
    );
    let no_shell = "Dockerfile:2:1: SHELL requires at least one argument: SHELL [\"executable\", \"parameters\"...]";
    assert_eq!(body_error("SHELL []"), no_shell);
    assert_eq!(body_error("SHELL"), no_shell);
    assert_eq!(body_error("RUN"), "Dockerfile:2:1: RUN requires a command to run");
    assert_eq!(body_error("RUN []"), "Dockerfile:2:1: RUN requires a command to run");
    assert_eq!(body_error("RUN --network=none"), "Dockerfile:2:1: RUN requires a command to run");
    assert_eq!(
        body_error("CMD"),
        "Dockerfile:2:1: CMD requires a command: CMD [\"executable\", \"param\"...] or CMD command param..."
    );
    assert_eq!(
        body_error("ENTRYPOINT  "),
        "Dockerfile:2:1: ENTRYPOINT requires a command: ENTRYPOINT [\"executable\", \"param\"...] or ENTRYPOINT command param..."
    );
}

#[test]
fn flags() {
    let d = parse_ok("FROM --platform=linux/arm64 alpine AS base");
    let from = ast::From {
        image: "alpine".into(),
        name: Some("base".into()),
        platform: Some("linux/arm64".into()),
    };
    assert_eq!(d.stages[0].from(), &from);
    assert_eq!(
        kind("RUN --network=none make"),
        Kind::Run(Run {
            command: shell("make"),
            heredocs: vec![],
            network: Some("none".into())
        })
    );
    assert_eq!(
        kind("RUN --network=host -- --weird"),
        Kind::Run(Run {
            command: shell("--weird"),
            heredocs: vec![],
            network: Some("host".into())
        })
    );
    assert_eq!(
        body_error("RUN --network=bridge x"),
        "Dockerfile:2:5: invalid network mode \"bridge\" (expected default, none or host)"
    );
    assert_eq!(
        body_error("RUN --mount=type=cache,target=/root/.cache x"),
        "Dockerfile:2:5: RUN --mount is not supported by Berth"
    );
    assert_eq!(
        body_error("RUN --security=insecure x"),
        "Dockerfile:2:5: RUN --security is not supported by Berth"
    );
    assert_eq!(body_error("RUN --bogus x"), "Dockerfile:2:5: unknown flag: --bogus");
    assert_eq!(body_error("RUN --network x"), "Dockerfile:2:5: missing a value on flag: --network");
    assert_eq!(body_error("RUN --network= x"), "Dockerfile:2:5: missing a value on flag: --network");
    assert_eq!(
        body_error("RUN --network=none --network=host x"),
        "Dockerfile:2:20: duplicate flag specified: --network"
    );

    let all = Copy {
        from: Some("build".into()),
        chown: Some("1000:1000".into()),
        chmod: Some("0755".into()),
        link: true,
        ..copy(&["src/"], "/app/")
    };
    assert_eq!(
        kind("COPY --from=build --chown=1000:1000 --chmod=0755 --link src/ /app/"),
        Kind::Copy(all)
    );
    let quoted = Copy {
        chown: Some("app user".into()),
        ..copy(&["a"], "b")
    };
    assert_eq!(kind("COPY --link=false --chown=\"app user\" a b"), Kind::Copy(quoted));
    assert_eq!(
        kind("COPY --link=TRUE a b"),
        Kind::Copy(Copy {
            link: true,
            ..copy(&["a"], "b")
        })
    );
    // Flags only come before the arguments.
    assert_eq!(kind("COPY a --link b"), Kind::Copy(copy(&["a", "--link"], "b")));
    assert_eq!(
        body_error("COPY --link=maybe a b"),
        "Dockerfile:2:6: expecting boolean value for flag --link, not: maybe"
    );
    assert_eq!(body_error("COPY --link= a b"), "Dockerfile:2:6: missing a value on flag: --link");
    assert_eq!(
        body_error("COPY --checksum=sha256:x a b"),
        "Dockerfile:2:6: unknown flag: --checksum"
    );
    assert_eq!(
        body_error("COPY --parents a b"),
        "Dockerfile:2:6: COPY --parents is not supported by Berth"
    );
    assert_eq!(
        body_error("COPY --exclude=*.md a b"),
        "Dockerfile:2:6: COPY --exclude is not supported by Berth"
    );
    assert_eq!(body_error("COPY --from a b"), "Dockerfile:2:6: missing a value on flag: --from");

    let add = Copy {
        chown: Some("1".into()),
        chmod: Some("644".into()),
        link: true,
        checksum: Some("sha256:abc".into()),
        keep_git_dir: true,
        ..copy(&["https://x/y.tar"], "/y")
    };
    assert_eq!(
        kind("ADD --checksum=sha256:abc --keep-git-dir --chown=1 --chmod=644 --link https://x/y.tar /y"),
        Kind::Add(add)
    );
    assert_eq!(kind("ADD --keep-git-dir=false a b"), Kind::Add(copy(&["a"], "b")));
    assert_eq!(body_error("ADD --from=x a b"), "Dockerfile:2:5: unknown flag: --from");
    assert_eq!(
        body_error("ADD --unpack a b"),
        "Dockerfile:2:5: ADD --unpack is not supported by Berth"
    );
    // Instructions without flags refuse them, as BuildKit does.
    assert_eq!(body_error("ENV --x=1 a=b"), "Dockerfile:2:5: unknown flag: --x");
    assert_eq!(body_error("CMD --help"), "Dockerfile:2:5: unknown flag: --help");
    assert_eq!(body_error("WORKDIR --x /a"), "Dockerfile:2:9: unknown flag: --x");
}

#[test]
fn run_heredocs() {
    let i = body("RUN <<EOF\napt-get update\n  echo $HOME\nEOF\nRUN echo done\n");
    assert_eq!(i.len(), 2);
    assert_eq!(i[0].source, "RUN <<EOF");
    let script = heredoc("EOF", "apt-get update\n  echo $HOME\n", true);
    assert_eq!(
        i[0].kind,
        Kind::Run(Run {
            command: shell("<<EOF"),
            heredocs: vec![script],
            network: None
        })
    );
    assert_eq!(i[1].loc, Loc { line: 6, col: 1 });

    // `<<-` strips leading tabs of the body and the terminator; a quoted delimiter does not expand.
    let Kind::Run(r) = kind("RUN <<-'EOT'\n\tindented\n\t\ttwice\n  spaces\n\tEOT") else {
        panic!()
    };
    assert_eq!(r.heredocs, [heredoc("EOT", "indented\ntwice\n  spaces\n", false)]);
    let Kind::Run(r) = kind("RUN <<\"EOT\"\nx\nEOT") else { panic!() };
    assert_eq!(r.heredocs, [heredoc("EOT", "x\n", false)]);

    // Several on one line, bodies in order; the command line keeps the redirections.
    let Kind::Run(r) = kind("RUN cat <<A >/a && cat <<-B >/b\na body\nA\n\tb body\n\tB") else {
        panic!()
    };
    assert_eq!(r.command, shell("cat <<A >/a && cat <<-B >/b"));
    assert_eq!(r.heredocs, [heredoc("A", "a body\n", true), heredoc("B", "b body\n", true)]);

    // Bodies are raw: comments, escapes, blank and instruction-like lines are content.
    let Kind::Run(r) = kind("RUN python3 <<PY\n# comment\necho a \\\nFROM x\n\nPY") else {
        panic!()
    };
    assert_eq!(r.heredocs, [heredoc("PY", "# comment\necho a \\\nFROM x\n\n", true)]);

    // Flags and continuation lines before the heredoc; CRLF line endings.
    let i = body("RUN --network=none \\\r\n  cat <<EOF > /x\r\nhello\r\nEOF\r\n");
    assert_eq!(i[0].source, "RUN --network=none   cat <<EOF > /x");
    let Kind::Run(r) = &i[0].kind else { panic!() };
    assert_eq!(r.heredocs, [heredoc("EOF", "hello\n", true)]);

    // A file descriptor before `<<`.
    let Kind::Run(r) = kind("RUN cat 3<<X\nx\nX") else { panic!() };
    assert_eq!(r.heredocs, [heredoc("X", "x\n", true)]);

    // Not heredocs: quoted, inside a word, here-strings, exec form.
    assert_eq!(kind(r#"RUN echo "a<<b" '<<c' x<<d"#), run(shell(r#"echo "a<<b" '<<c' x<<d"#)));
    assert_eq!(kind("RUN cat <<<here"), run(shell("cat <<<here")));
    assert_eq!(kind(r#"RUN ["cat", "<<EOF"]"#), run(exec(&["cat", "<<EOF"])));

    // Missing terminators are reported at the heredoc.
    let unterminated = |name: &str| format!("unterminated heredoc: no line \"{name}\" ends it before the end of the file");
    assert_eq!(
        body_error("RUN cat <<EOF\nhello\n"),
        format!("Dockerfile:2:9: {}", unterminated("EOF"))
    );
    assert_eq!(
        body_error("RUN <<A <<B\na\nA\nb\n"),
        format!("Dockerfile:2:9: {}", unterminated("B"))
    );
    // Without `-` a tab-indented terminator is just content.
    assert_eq!(body_error("RUN <<A\n\tA\n"), format!("Dockerfile:2:5: {}", unterminated("A")));
}

#[test]
fn copy_heredocs() {
    let motd = Copy {
        heredocs: vec![heredoc("EOF", "hello\n", true)],
        ..copy(&["<<EOF"], "/etc/motd")
    };
    assert_eq!(kind("COPY <<EOF /etc/motd\nhello\nEOF"), Kind::Copy(motd));
    let several = Copy {
        chmod: Some("755".into()),
        heredocs: vec![heredoc("A", "$x\n", false), heredoc("B", "b\n", true)],
        ..copy(&["<<A", "<<B", "plain"], "/dir/")
    };
    assert_eq!(
        kind("COPY --chmod=755 <<-\"A\" <<B plain /dir/\n\t$x\n\tA\nb\nB"),
        Kind::Copy(several)
    );
    let add = Copy {
        heredocs: vec![heredoc("EOF", "body\n", true)],
        ..copy(&["<<EOF"], "/x")
    };
    assert_eq!(kind("ADD <<EOF /x\nbody\nEOF"), Kind::Add(add));
    assert_eq!(
        body_error("COPY a <<EOF\nx\nEOF"),
        "Dockerfile:2:8: COPY cannot accept a heredoc as a destination"
    );
    // The JSON form names files; a word that is more than a heredoc is a file name.
    assert_eq!(kind(r#"COPY ["<<EOF", "/x"]"#), Kind::Copy(copy(&["<<EOF"], "/x")));
    assert_eq!(kind("COPY <<EOF>x /y"), Kind::Copy(copy(&["<<EOF>x"], "/y")));
    assert_eq!(
        body_error("COPY <<EOF /x\n"),
        "Dockerfile:2:6: unterminated heredoc: no line \"EOF\" ends it before the end of the file"
    );
}

#[test]
fn onbuild() {
    let i = body("ONBUILD RUN echo hi");
    assert_eq!(i[0].source, "ONBUILD RUN echo hi");
    let inner = Instruction {
        loc: Loc { line: 2, col: 9 },
        source: "RUN echo hi".into(),
        kind: run(shell("echo hi")),
    };
    assert_eq!(i[0].kind, Kind::Onbuild(Box::new(inner)));

    let Kind::Onbuild(inner) = kind("onbuild copy --from=x <<EOF /y\nz\nEOF") else {
        panic!()
    };
    assert_eq!(inner.source, "copy --from=x <<EOF /y");
    let expected = Copy {
        from: Some("x".into()),
        heredocs: vec![heredoc("EOF", "z\n", true)],
        ..copy(&["<<EOF"], "/y")
    };
    assert_eq!(inner.kind, Kind::Copy(expected));

    assert_eq!(
        body_error("ONBUILD"),
        "Dockerfile:2:1: ONBUILD requires an instruction to run in builds based on this image"
    );
    assert_eq!(
        body_error("ONBUILD ONBUILD RUN x"),
        "Dockerfile:2:9: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        body_error("ONBUILD from x"),
        "Dockerfile:2:9: FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        body_error("ONBUILD MAINTAINER me"),
        "Dockerfile:2:9: MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(body_error("ONBUILD FOO x"), "Dockerfile:2:9: unknown instruction: FOO");
    assert_eq!(body_error("ONBUILD --x RUN a"), "Dockerfile:2:9: unknown flag: --x");
    assert_eq!(
        body_error("ONBUILD COPY a"),
        "Dockerfile:2:9: COPY requires at least two arguments: COPY [flags] <source>... <destination>"
    );
}

#[test]
fn stages_and_meta_args() {
    let d = parse_ok("ARG BASE=alpine\nARG V\nFROM ${BASE}:${V} AS build\nRUN make\nFROM scratch\nCOPY --from=build /out /\n");
    let meta: Vec<Kind> = d.meta_args.iter().map(|i| i.kind.clone()).collect();
    assert_eq!(
        meta,
        [Kind::Arg(vec![arg("BASE", Some("alpine"))]), Kind::Arg(vec![arg("V", None)])]
    );
    assert_eq!(d.stages.len(), 2);
    assert_eq!(
        d.stages[0].from(),
        &ast::From {
            image: "${BASE}:${V}".into(),
            name: Some("build".into()),
            platform: None
        }
    );
    assert_eq!(d.stages[0].instructions.len(), 1);
    assert_eq!(d.stages[1].from().name, None);
    assert_eq!(d.stages[1].from.loc, Loc { line: 5, col: 1 });
    assert_eq!(
        d.stages[1].instructions[0].kind,
        Kind::Copy(Copy {
            from: Some("build".into()),
            ..copy(&["/out"], "/")
        })
    );
    // ARG after FROM belongs to the stage.
    assert_eq!(body("ARG X").len(), 1);

    let before = "(only ARG may come before the first FROM)";
    assert_eq!(error("RUN x\nFROM a"), format!("Dockerfile:1:1: expected FROM before RUN {before}"));
    assert_eq!(
        error("ARG a\n  env b=c\nFROM x"),
        format!("Dockerfile:2:3: expected FROM before ENV {before}")
    );
    let no_stage = "expected FROM: the Dockerfile has no build stage";
    assert_eq!(error(""), format!("Dockerfile:1:1: {no_stage}"));
    assert_eq!(error("# just a comment\n\n"), format!("Dockerfile:2:1: {no_stage}"));
    assert_eq!(error("ARG a\nARG b"), format!("Dockerfile:2:1: {no_stage}"));
}

#[test]
fn from_forms() {
    assert_eq!(parse_ok("FROM a as Builder").stages[0].from().name.as_deref(), Some("builder"));
    assert_eq!(parse_ok("FROM a AS x-1_2.3").stages[0].from().name.as_deref(), Some("x-1_2.3"));
    assert_eq!(parse_ok("FROM \"a b\"").stages[0].from().image, "\"a b\"");
    assert_eq!(
        error("FROM"),
        "Dockerfile:1:1: FROM requires an image: FROM [--platform=<platform>] <image> [AS <name>]"
    );
    assert_eq!(error("FROM a AS"), "Dockerfile:1:8: FROM requires a stage name after AS");
    assert_eq!(
        error("FROM a b"),
        "Dockerfile:1:8: FROM expects AS <name> after the image, found \"b\""
    );
    assert_eq!(
        error("FROM a b c"),
        "Dockerfile:1:8: FROM expects AS <name> after the image, found \"b\""
    );
    assert_eq!(
        error("FROM a AS b c"),
        "Dockerfile:1:13: FROM expects nothing after the stage name, found \"c\""
    );
    let invalid = "a name starts with a letter and has only letters, digits, '-', '_' and '.'";
    assert_eq!(
        error("FROM a AS 1st"),
        format!("Dockerfile:1:11: invalid stage name \"1st\": {invalid}")
    );
    assert_eq!(
        error("FROM a AS x/y"),
        format!("Dockerfile:1:11: invalid stage name \"x/y\": {invalid}")
    );
    assert_eq!(
        error("FROM a AS ${NAME}"),
        format!("Dockerfile:1:11: invalid stage name \"${{NAME}}\": {invalid}")
    );
    assert_eq!(
        error("FROM a AS b\nFROM c as B"),
        "Dockerfile:2:11: duplicate stage name \"b\" (first used on line 1)"
    );
    assert_eq!(error("FROM --platform a"), "Dockerfile:1:6: missing a value on flag: --platform");
    assert_eq!(error("FROM --bogus=1 a"), "Dockerfile:1:6: unknown flag: --bogus");
}

#[test]
fn label_and_env() {
    assert_eq!(
        kind("LABEL maintainer Jane Doe <jane@example.com>"),
        Kind::Label(pairs(&[("maintainer", "Jane Doe <jane@example.com>")]))
    );
    assert_eq!(
        kind(r#"LABEL a=b "c d"="e f" g='h i' j="""#),
        Kind::Label(pairs(&[("a", "b"), ("\"c d\"", "\"e f\""), ("g", "'h i'"), ("j", "\"\"")]))
    );
    assert_eq!(
        kind("LABEL multi.line=\"a \\\n  b\""),
        Kind::Label(pairs(&[("multi.line", "\"a   b\"")]))
    );
    assert_eq!(
        body_error("LABEL foo"),
        "Dockerfile:2:7: LABEL foo requires a value: LABEL <name>=<value> ... (or the legacy LABEL <name> <value>)"
    );
    assert_eq!(
        body_error("LABEL a=b foo"),
        "Dockerfile:2:11: LABEL requires <name>=<value> pairs: can't find = in \"foo\""
    );
    assert_eq!(
        body_error("LABEL"),
        "Dockerfile:2:1: LABEL requires at least one argument: LABEL <name>=<value> ..."
    );
    assert_eq!(body_error("LABEL =x"), "Dockerfile:2:7: LABEL names can not be blank");

    assert_eq!(
        kind(r#"ENV A=1 B="two words" C=${A}\ x D= E="x=y""#),
        Kind::Env(pairs(&[
            ("A", "1"),
            ("B", "\"two words\""),
            ("C", "${A}\\ x"),
            ("D", ""),
            ("E", "\"x=y\"")
        ]))
    );
    assert_eq!(
        kind("ENV PATH /usr/local/bin:$PATH  and  more  "),
        Kind::Env(pairs(&[("PATH", "/usr/local/bin:$PATH  and  more")]))
    );
    assert_eq!(kind("ENV A \"quoted\" rest"), Kind::Env(pairs(&[("A", "\"quoted\" rest")])));
    assert_eq!(
        body_error("ENV ONLY"),
        "Dockerfile:2:5: ENV ONLY requires a value: ENV <name>=<value> ... (or the legacy ENV <name> <value>)"
    );
    assert_eq!(
        body_error("ENV A=1 B"),
        "Dockerfile:2:9: ENV requires <name>=<value> pairs: can't find = in \"B\""
    );
    assert_eq!(
        body_error("ENV"),
        "Dockerfile:2:1: ENV requires at least one argument: ENV <name>=<value> ..."
    );
    assert_eq!(body_error("ENV =x"), "Dockerfile:2:5: ENV names can not be blank");
}

#[test]
fn other_instructions() {
    assert_eq!(
        kind("EXPOSE 80 53/udp ${PORT}"),
        Kind::Expose(strings(&["80", "53/udp", "${PORT}"]))
    );
    assert_eq!(
        body_error("EXPOSE"),
        "Dockerfile:2:1: EXPOSE requires at least one port: EXPOSE <port>[/<protocol>] ..."
    );
    assert_eq!(kind(r#"VOLUME ["/data", " /logs "]"#), Kind::Volume(strings(&["/data", "/logs"])));
    assert_eq!(kind("VOLUME /a \"/b c\""), Kind::Volume(strings(&["/a", "\"/b c\""])));
    let no_volume = "Dockerfile:2:1: VOLUME requires at least one path: VOLUME [\"/path\"] or VOLUME /path ...";
    assert_eq!(body_error("VOLUME []"), no_volume);
    assert_eq!(body_error("VOLUME"), no_volume);
    assert_eq!(
        body_error(r#"VOLUME ["/a", ""]"#),
        "Dockerfile:2:8: VOLUME paths can not be empty strings"
    );
    assert_eq!(
        body_error("VOLUME [1]"),
        "Dockerfile:2:8: when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(kind("USER app:staff"), Kind::User("app:staff".into()));
    assert_eq!(
        body_error("USER"),
        "Dockerfile:2:1: USER requires a user name or UID: USER <user>[:<group>]"
    );
    assert_eq!(kind("WORKDIR /my dir"), Kind::Workdir("/my dir".into()));
    assert_eq!(body_error("WORKDIR   "), "Dockerfile:2:1: WORKDIR requires a path");
    assert_eq!(kind("ARG A"), Kind::Arg(vec![arg("A", None)]));
    assert_eq!(
        kind("ARG A=1 B C=\"x y\" D="),
        Kind::Arg(vec![
            arg("A", Some("1")),
            arg("B", None),
            arg("C", Some("\"x y\"")),
            arg("D", Some(""))
        ])
    );
    assert_eq!(
        body_error("ARG"),
        "Dockerfile:2:1: ARG requires at least one name: ARG <name>[=<default value>] ..."
    );
    assert_eq!(body_error("ARG =x"), "Dockerfile:2:5: ARG names can not be blank");
    assert_eq!(kind("STOPSIGNAL SIGKILL"), Kind::Stopsignal("SIGKILL".into()));
    assert_eq!(
        body_error("STOPSIGNAL"),
        "Dockerfile:2:1: STOPSIGNAL requires a signal name or number"
    );
    assert_eq!(
        kind("MAINTAINER Jane Doe <jane@example.com>"),
        Kind::Maintainer("Jane Doe <jane@example.com>".into())
    );
    assert_eq!(body_error("MAINTAINER"), "Dockerfile:2:1: MAINTAINER requires a name");
    let two = "requires at least two arguments";
    assert_eq!(
        body_error("COPY onlyone"),
        format!("Dockerfile:2:1: COPY {two}: COPY [flags] <source>... <destination>")
    );
    assert_eq!(
        body_error("ADD"),
        format!("Dockerfile:2:1: ADD {two}: ADD [flags] <source>... <destination>")
    );
    assert_eq!(
        body_error(r#"COPY ["a"]"#),
        format!("Dockerfile:2:1: COPY {two}: COPY [flags] <source>... <destination>")
    );
    assert_eq!(kind("COPY \"a b\" c\\ d /dest/"), Kind::Copy(copy(&["\"a b\"", "c\\ d"], "/dest/")));
    assert_eq!(kind(r#"COPY ["a b", "/dest/"]"#), Kind::Copy(copy(&["a b"], "/dest/")));
}

#[test]
fn healthcheck() {
    assert_eq!(kind("HEALTHCHECK NONE"), Kind::Healthcheck(Healthcheck::None));
    assert_eq!(kind("healthcheck none"), Kind::Healthcheck(Healthcheck::None));
    let full =
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --start-interval=500ms --retries=3 CMD curl -f http://x/ || exit 1";
    let check = Healthcheck::Check {
        command: shell("curl -f http://x/ || exit 1"),
        interval: Some("30s".into()),
        timeout: Some("5s".into()),
        start_period: Some("1m".into()),
        start_interval: Some("500ms".into()),
        retries: Some(3),
    };
    assert_eq!(kind(full), Kind::Healthcheck(check));
    let exec_check = Healthcheck::Check {
        command: exec(&["/bin/check", "--deep"]),
        interval: Some("0s".into()),
        timeout: None,
        start_period: None,
        start_interval: None,
        retries: None,
    };
    assert_eq!(
        kind(r#"HEALTHCHECK --interval=0s cmd ["/bin/check", "--deep"]"#),
        Kind::Healthcheck(exec_check)
    );
    assert_eq!(
        body_error("HEALTHCHECK"),
        "Dockerfile:2:1: HEALTHCHECK requires NONE or CMD <command>"
    );
    assert_eq!(
        body_error("HEALTHCHECK NONE x"),
        "Dockerfile:2:18: HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        body_error("HEALTHCHECK --interval=1s NONE"),
        "Dockerfile:2:13: HEALTHCHECK NONE takes no flags"
    );
    assert_eq!(body_error("HEALTHCHECK CMD"), "Dockerfile:2:13: HEALTHCHECK CMD requires a command");
    assert_eq!(
        body_error("HEALTHCHECK CMD []"),
        "Dockerfile:2:13: HEALTHCHECK CMD requires a command"
    );
    assert_eq!(
        body_error("HEALTHCHECK CMD [1]"),
        "Dockerfile:2:17: when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(
        body_error("HEALTHCHECK EXEC x"),
        "Dockerfile:2:13: unknown HEALTHCHECK type \"EXEC\" (expected CMD or NONE)"
    );
    assert_eq!(
        body_error("HEALTHCHECK --interval=30 CMD x"),
        "Dockerfile:2:13: invalid --interval: missing unit in duration \"30\""
    );
    assert_eq!(
        body_error("HEALTHCHECK --timeout=10us CMD x"),
        "Dockerfile:2:13: --timeout cannot be less than 1ms"
    );
    assert_eq!(
        body_error("HEALTHCHECK --retries=-1 CMD x"),
        "Dockerfile:2:13: --retries cannot be negative (-1)"
    );
    assert_eq!(
        body_error("HEALTHCHECK --retries=many CMD x"),
        "Dockerfile:2:13: invalid --retries: \"many\" is not a whole number"
    );
    assert_eq!(
        body_error("HEALTHCHECK --retries=3000000000 CMD x"),
        "Dockerfile:2:13: --retries is too large (3000000000)"
    );
    assert_eq!(body_error("HEALTHCHECK --bogus=1 CMD x"), "Dockerfile:2:13: unknown flag: --bogus");
}

#[test]
fn unknown_instructions() {
    assert_eq!(
        error("FROM a\nRUNN x"),
        "Dockerfile:2:1: unknown instruction: RUNN (did you mean RUN?)"
    );
    assert_eq!(
        error("FROM a\n  workdri /x"),
        "Dockerfile:2:3: unknown instruction: workdri (did you mean WORKDIR?)"
    );
    assert_eq!(
        error("FROM a\nENTRYPIONT x"),
        "Dockerfile:2:1: unknown instruction: ENTRYPIONT (did you mean ENTRYPOINT?)"
    );
    assert_eq!(error("FROM a\nFOO bar"), "Dockerfile:2:1: unknown instruction: FOO");
    assert_eq!(error("FOO"), "Dockerfile:1:1: unknown instruction: FOO");
    assert_eq!(error("FROM a\nRUN[\"x\"]"), "Dockerfile:2:1: unknown instruction: RUN[\"x\"]");
}

/// A small deterministic fuzzer over fragments that exercise the tricky paths: the parser must
/// never panic, its errors must point into the text, and every raw word must be expandable or
/// refused without a panic.
#[test]
fn odd_inputs_never_panic() {
    #[rustfmt::skip]
        const PIECES: [&str; 48] = [
            "FROM a", "FROM a AS b", "RUN ", "COPY ", "ADD ", "ONBUILD ", "HEALTHCHECK ", "CMD ", "ENV ", "LABEL ", "ARG ", "SHELL ",
            "\n", "\r\n", "\\", "`", "\\\n", "<<", "<<-", "EOF", "'", "\"", "[", "]", "\"a\"", ",", "--", "--from=", "--link", "=", " ",
            "\t", "#", "# escape=`\n", "${", "}", ":-", "$", "é", "日本", "\u{feff}", "AS", "x", "\tEOF\n", "EOF\n", "NONE", "CMD", "2",
        ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let text: String = (0..next() % 24).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
        let lines = text.split('\n').count();
        match parse(&text) {
            Err(e) => assert!(e.loc.line >= 1 && e.loc.line <= lines && e.loc.col >= 1, "{text:?}: {e}"),
            Ok(d) => {
                let lookup = |name: &str| (name == "a").then(|| "value".to_string());
                for i in d.stages.iter().flat_map(|s| std::iter::once(&s.from).chain(&s.instructions)) {
                    for word in i.source.split(' ') {
                        let _ = super::super::expand(word, d.escape, &lookup);
                    }
                }
            }
        }
    }
}
