//! The parsed form of a Dockerfile.
//!
//! Strings the Dockerfile reference subjects to variable substitution are kept *raw* here (quotes and
//! escapes still in them): the builder expands them with [`super::expand`] once it knows the
//! variables in scope at that step. Exec-form (JSON) arrays are already decoded. Flag values
//! (`--from=...`, `--chown=...`) have their quotes and escapes removed, as BuildKit's parser does,
//! but are not expanded either.

/// A position in the Dockerfile, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    pub line: usize,
    pub col: usize,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.col)
    }
}

/// A whole Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// The escape character (`# escape=`), `\` by default.
    pub escape: char,
    /// `# syntax=` if given (recorded, not acted on).
    pub syntax: Option<String>,
    /// `ARG`s before the first `FROM` (usable in `FROM` lines).
    pub meta_args: Vec<Instruction>,
    /// The build stages in order.
    pub stages: Vec<Stage>,
}

/// One `FROM` and the instructions after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The `FROM` instruction (its `kind` is [`Kind::From`]).
    pub from: Instruction,
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// The `FROM` details.
    pub fn from(&self) -> &From {
        match &self.from.kind {
            Kind::From(f) => f,
            _ => unreachable!("a stage starts with FROM"),
        }
    }
}

/// One instruction with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub loc: Loc,
    /// The instruction as written, continuation lines joined with the escapes and newlines removed,
    /// comments dropped, heredoc bodies not included (e.g. `RUN apt-get update && apt-get install -y x`).
    pub source: String,
    pub kind: Kind,
}

/// `FROM [--platform=p] image [AS name]` (image and platform raw, to be expanded with the meta ARGs).
#[derive(Debug, Clone, PartialEq)]
pub struct From {
    pub image: String,
    /// The stage name, lower-cased (as BuildKit does), validated and unique in the Dockerfile.
    pub name: Option<String>,
    pub platform: Option<String>,
}

/// Shell form (one raw string handed to the SHELL) or exec form (decoded JSON array).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

/// A here-document attached to an instruction (`<<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    /// The delimiter word, unquoted (`EOF`).
    pub name: String,
    /// The body, each line ending in `\n`, without the terminator line. For `<<-`, leading tabs are
    /// already removed from every line.
    pub content: String,
    /// Whether variables in `content` are expanded: false when the delimiter was quoted (`<<"EOF"`,
    /// `<<'EOF'`).
    pub expand: bool,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub command: Command,
    /// Heredocs in the order they appear on the line. With a shell-form command of exactly `<<EOF`
    /// the single heredoc is the script; otherwise the shell sees the command line followed by the
    /// heredoc bodies and terminators, as a shell script would be written.
    pub heredocs: Vec<Heredoc>,
    /// `--network=default|none|host`, raw.
    pub network: Option<String>,
}

/// `COPY` or `ADD`.
#[derive(Debug, Clone, PartialEq)]
pub struct Copy {
    /// Sources, raw (for a heredoc source, the `<<EOF` word itself; see `heredocs`). A heredoc source
    /// is normalized to `<<` followed by the unquoted delimiter: `<<-"EOF"` becomes `<<EOF`.
    pub sources: Vec<String>,
    /// Destination, raw.
    pub dest: String,
    /// `--from=stage|image` (COPY only), raw.
    pub from: Option<String>,
    /// `--chown=user[:group]`, raw.
    pub chown: Option<String>,
    /// `--chmod=octal`, raw.
    pub chmod: Option<String>,
    /// `--link` given (accepted; Berth's layers are always independent of their parent).
    pub link: bool,
    /// `--checksum=sha256:...` (ADD of a URL), raw.
    pub checksum: Option<String>,
    /// `--keep-git-dir` given (ADD).
    pub keep_git_dir: bool,
    /// Here-documents used as sources, matched to `sources` entries of the form `<<NAME`.
    pub heredocs: Vec<Heredoc>,
}

/// `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgDef {
    pub name: String,
    /// Raw default value, if any.
    pub default: Option<String>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`.
    None,
    Check {
        /// `CMD` argument: shell form becomes `CMD-SHELL`.
        command: Command,
        /// Durations raw as written (`30s`, `1m30s`).
        interval: Option<String>,
        timeout: Option<String>,
        start_period: Option<String>,
        start_interval: Option<String>,
        retries: Option<u32>,
    },
}

/// What an instruction is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    From(From),
    Run(Run),
    Cmd(Command),
    Entrypoint(Command),
    /// `SHELL ["exe", "arg"...]` (exec form only).
    Shell(Vec<String>),
    /// Key/value pairs, both raw (`LABEL a=b "c d"=e`; legacy `LABEL a b` is refused as Docker does).
    Label(Vec<(String, String)>),
    /// Key/value pairs, raw (`ENV a=b c=d` or legacy `ENV a some value`).
    Env(Vec<(String, String)>),
    /// Raw port specs (`80`, `53/udp`, `${PORT}`).
    Expose(Vec<String>),
    /// Raw paths (JSON or space-separated form).
    Volume(Vec<String>),
    /// Raw `user[:group]`.
    User(String),
    /// Raw path.
    Workdir(String),
    Arg(Vec<ArgDef>),
    /// The trigger instruction, parsed (never FROM, ONBUILD or MAINTAINER).
    Onbuild(Box<Instruction>),
    /// Raw signal.
    Stopsignal(String),
    Healthcheck(Healthcheck),
    Maintainer(String),
    Copy(Copy),
    Add(Copy),
}

impl Kind {
    /// The instruction's keyword in upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Kind::From(_) => "FROM",
            Kind::Run(_) => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Shell(_) => "SHELL",
            Kind::Label(_) => "LABEL",
            Kind::Env(_) => "ENV",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::User(_) => "USER",
            Kind::Workdir(_) => "WORKDIR",
            Kind::Arg(_) => "ARG",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Stopsignal(_) => "STOPSIGNAL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Maintainer(_) => "MAINTAINER",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
        }
    }
}
