//! Images from Python projects without a Dockerfile, by the conventions repo2docker (Binder)
//! reads: the project's files say what to install and how to start, and a Dockerfile is
//! written from them — one a user can print (`berth build --print-dockerfile`) and keep.
//!
//! What is read, in the order repo2docker gives it:
//! - the Python version: `runtime.txt` (`python-3.11`), else `.python-version` (`3.11.4`),
//!   else `requires-python` in `pyproject.toml` (its lowest `>=` version), else
//!   `python=3.x` in `environment.yml`;
//! - dependencies: `requirements.txt`; else `pyproject.toml` — pinned by `uv.lock` or
//!   `poetry.lock` when one is there, else its PEP 621 `project.dependencies`; else the
//!   `pip:` part of `environment.yml` (conda packages other than python are refused: there
//!   is no conda here);
//! - `apt.txt`: Debian packages, installed first;
//! - `postBuild`: a script run after the source is in;
//! - how to start: `Procfile`'s `web`, else `app.py`, else `main.py`, else a Jupyter server
//!   when the project holds notebooks.
//!
//! The image: the base (`python:<version>-slim` unless chosen), a virtualenv at `/opt/venv`
//! (with the base's own packages visible, so a Debian base's python3-* packages count),
//! the dependency files alone copied and installed in their own layer — so that editing the
//! code reuses it — the resolved versions (`pip freeze`) written to [`FREEZE_PATH`], the
//! source copied last, owned by and run as a non-root user (`app`, uid 1000).

use std::path::Path;

use serde_json::Value;

/// Where the generated image records the Python packages it resolved.
pub const FREEZE_PATH: &str = "/etc/berth/pip-freeze.txt";

/// The Python version a project gets when it names none.
pub const DEFAULT_PYTHON: &str = "3.12";

/// The files that make a directory a Python project (the error for one without names them).
pub const DEPENDENCY_FILES: &[&str] = &["requirements.txt", "pyproject.toml", "environment.yml"];

/// Where a project's dependencies come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependencies {
    /// `pip install -r requirements.txt`.
    Requirements,
    /// Requirement strings installed as given (from `pyproject.toml` or `environment.yml`);
    /// `from` is the file they were read from, copied in so the layer is keyed by it.
    Listed {
        /// The files the list was read from (copied in before the install).
        from: Vec<String>,
        /// The requirements.
        packages: Vec<String>,
    },
}

/// How the image starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// A shell command (Procfile `web`).
    Shell(String),
    /// `python FILE`.
    Script(String),
    /// A Jupyter server (the project holds notebooks).
    Notebook,
    /// Nothing found: Python's own prompt.
    Python,
}

/// What a project directory says about its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The Python version (`3.11`), when the project names one.
    pub python: Option<String>,
    /// Its dependencies.
    pub dependencies: Dependencies,
    /// Debian packages (`apt.txt`).
    pub apt: Vec<String>,
    /// Whether it has a `postBuild` script.
    pub post_build: bool,
    /// Whether it has a `pyproject.toml` that builds the project itself (a `[build-system]`
    /// and a `[project]` name): it is installed (without dependencies) after the source.
    pub installable: bool,
    /// How it starts.
    pub start: Start,
}

fn read(dir: &Path, name: &str) -> Result<Option<String>, String> {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {name}: {e}")),
    }
}

/// `3.11.4`, `python-3.11`, `3.11` → `3.11`.
fn major_minor(v: &str) -> Option<String> {
    let v = v.trim().trim_start_matches("python-").trim_start_matches("python");
    let mut parts = v.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let minor: String = minor.chars().take_while(char::is_ascii_digit).collect();
    (digits(major) && digits(&minor)).then(|| format!("{major}.{minor}"))
}

fn toml(dir: &Path, name: &str) -> Result<Option<Value>, String> {
    match read(dir, name)? {
        Some(s) => basic_toml::from_str::<Value>(&s).map(Some).map_err(|e| format!("{name}: {e}")),
        None => Ok(None),
    }
}

/// Pinned requirements from a lock file (`uv.lock`, `poetry.lock`): every package but the
/// project itself (and, for Poetry, its dev-only packages).
fn locked(lock: &Value, project: &str) -> Vec<String> {
    let normalise = |n: &str| n.to_ascii_lowercase().replace(['_', '.'], "-");
    let mut out: Vec<String> = lock["package"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| normalise(p["name"].as_str().unwrap_or("")) != normalise(project))
        .filter(|p| p["category"].as_str().is_none_or(|c| c == "main"))
        // uv marks the project (and workspace members) by their source.
        .filter(|p| p.pointer("/source/editable").is_none() && p.pointer("/source/virtual").is_none())
        .filter_map(|p| Some(format!("{}=={}", p["name"].as_str()?, p["version"].as_str()?)))
        .collect();
    out.sort();
    out
}

fn conda_only(package: &str) -> String {
    format!("environment.yml: {package:?} is a conda package; there is no conda here — list it under `- pip:` (or in requirements.txt)")
}

/// Read a project directory (`Err`: why it is not a Python project this can build).
pub fn detect(dir: &Path) -> Result<Project, String> {
    let pyproject = toml(dir, "pyproject.toml")?;
    let environment = match read(dir, "environment.yml")? {
        Some(s) => Some(serde_saphyr::from_str::<Value>(&s).map_err(|e| format!("environment.yml: {e}"))?),
        None => None,
    };
    let mut python = match read(dir, "runtime.txt")? {
        Some(s) => {
            Some(major_minor(&s).ok_or_else(|| format!("runtime.txt: {:?} is not a Python version (write e.g. python-3.11)", s.trim()))?)
        }
        None => None,
    };
    if python.is_none() {
        if let Some(s) = read(dir, ".python-version")? {
            python = Some(major_minor(&s).ok_or_else(|| format!(".python-version: {:?} is not a Python version (e.g. 3.11)", s.trim()))?);
        }
    }
    if python.is_none() {
        python = pyproject
            .as_ref()
            .and_then(|p| p.pointer("/project/requires-python"))
            .and_then(Value::as_str)
            .and_then(|r| r.split(',').find_map(|c| c.trim().strip_prefix(">=")))
            .and_then(major_minor);
    }
    let conda: Vec<&Value> = environment
        .as_ref()
        .and_then(|e| e["dependencies"].as_array())
        .into_iter()
        .flatten()
        .collect();
    if python.is_none() {
        python = conda
            .iter()
            .filter_map(|d| d.as_str())
            .find_map(|d| d.strip_prefix("python=").or_else(|| d.strip_prefix("python==")))
            .and_then(major_minor);
    }
    let dependencies = if dir.join("requirements.txt").is_file() {
        Dependencies::Requirements
    } else if let Some(p) = &pyproject {
        let name = p.pointer("/project/name").and_then(Value::as_str).unwrap_or("");
        let mut from = vec!["pyproject.toml".to_string()];
        let mut packages = Vec::new();
        for lock in ["uv.lock", "poetry.lock"] {
            if let Some(l) = toml(dir, lock)? {
                packages = locked(&l, name);
                from.push(lock.to_string());
                break;
            }
        }
        if from.len() == 1 {
            packages = p
                .pointer("/project/dependencies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect();
        }
        Dependencies::Listed { from, packages }
    } else if environment.is_some() {
        let mut packages = Vec::new();
        for d in &conda {
            match d {
                Value::String(s) if s == "pip" || s.starts_with("python=") || s.starts_with("python==") || s == "python" => {}
                Value::String(s) => return Err(conda_only(s)),
                Value::Object(m) if m.contains_key("pip") => {
                    packages.extend(
                        m["pip"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(String::from),
                    );
                }
                other => {
                    return Err(format!(
                        "environment.yml: dependencies: {other} is neither a package nor a pip list"
                    ))
                }
            }
        }
        Dependencies::Listed {
            from: vec!["environment.yml".into()],
            packages,
        }
    } else {
        return Err(format!(
            "{} has no Dockerfile and is not a Python project Berth can build: looked for {} (and runtime.txt, .python-version, apt.txt, Procfile, postBuild beside them)",
            dir.display(),
            DEPENDENCY_FILES.join(", ")
        ));
    };
    let apt = read(dir, "apt.txt")?
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>();
    for p in &apt {
        let ok = p.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.:=~".contains(&b));
        if !ok {
            return Err(format!("apt.txt: {p:?} is not a Debian package name"));
        }
    }
    let installable = pyproject
        .as_ref()
        .is_some_and(|p| p.get("build-system").is_some() && p.pointer("/project/name").is_some());
    let web = read(dir, "Procfile")?.and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("web:").map(|c| c.trim().to_string()))
            .filter(|c| !c.is_empty())
    });
    let notebooks = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".ipynb"));
    let start = match web {
        Some(c) => Start::Shell(c),
        None if dir.join("app.py").is_file() => Start::Script("app.py".into()),
        None if dir.join("main.py").is_file() => Start::Script("main.py".into()),
        None if notebooks => Start::Notebook,
        None => Start::Python,
    };
    Ok(Project {
        python,
        dependencies,
        apt,
        post_build: dir.join("postBuild").is_file(),
        installable,
        start,
    })
}

/// A string as a JSON (exec-form) word.
fn word(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A requirement as one shell word.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Project {
    /// The image's base: `base` when chosen, else `python:<version>-slim`.
    pub fn base(&self, base: Option<&str>) -> String {
        match base {
            Some(b) => b.to_string(),
            None => format!("python:{}-slim", self.python.as_deref().unwrap_or(DEFAULT_PYTHON)),
        }
    }

    /// The Dockerfile that builds the project's image.
    pub fn dockerfile(&self, base: Option<&str>) -> String {
        let mut d = String::new();
        d.push_str("# Generated by `berth build` from the project's files; build it with\n");
        d.push_str("# `berth build -f Dockerfile .` once saved, and edit it freely.\n");
        d.push_str(&format!("FROM {}\n", self.base(base)));
        d.push_str("ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1\n");
        if !self.apt.is_empty() {
            d.push_str(&format!(
                "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {} && rm -rf /var/lib/apt/lists/*\n",
                self.apt.join(" ")
            ));
        }
        d.push_str("RUN (id -u app >/dev/null 2>&1 || useradd --create-home --uid 1000 --user-group app) \\\n");
        d.push_str(" && python3 -m venv --system-site-packages /opt/venv && mkdir -p /etc/berth /app && chown 1000:1000 /app\n");
        d.push_str("ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}\n");
        // Where packages come from may be given at build time (a mirror, a private index).
        for a in ["PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_FIND_LINKS"] {
            d.push_str(&format!("ARG {a}\n"));
        }
        d.push_str("WORKDIR /app\n");
        let mut packages: Vec<String> = Vec::new();
        match &self.dependencies {
            Dependencies::Requirements => {
                d.push_str("COPY requirements.txt /app/\n");
                packages.push("-r requirements.txt".into());
            }
            Dependencies::Listed { from, packages: p } => {
                d.push_str(&format!("COPY {} /app/\n", from.join(" ")));
                packages.extend(p.iter().map(|r| quoted(r)));
            }
        }
        if self.start == Start::Notebook {
            packages.push("notebook".into());
        }
        let install = if packages.is_empty() {
            String::new()
        } else {
            format!("pip install {} && ", packages.join(" "))
        };
        d.push_str(&format!("RUN {install}pip freeze --all > {FREEZE_PATH}\n"));
        d.push_str("COPY --chown=1000:1000 . /app/\n");
        if self.installable {
            d.push_str("RUN pip install --no-deps /app\n");
        }
        if self.post_build {
            d.push_str("RUN chmod +x postBuild && ./postBuild\n");
        }
        d.push_str("USER 1000:1000\n");
        match &self.start {
            Start::Shell(c) => {
                d.push_str("ENV PORT=8000\n");
                d.push_str(&format!("CMD [\"/bin/sh\", \"-c\", {}]\n", word(c)));
            }
            Start::Script(f) => d.push_str(&format!("CMD [\"python\", {}]\n", word(f))),
            Start::Notebook => {
                d.push_str("EXPOSE 8888\n");
                // The server (and so its kernels) on the environment's own Python.
                d.push_str("CMD [\"python\", \"-m\", \"notebook\", \"--ip=0.0.0.0\", \"--port=8888\", \"--no-browser\"]\n");
            }
            Start::Python => d.push_str("CMD [\"python\"]\n"),
        }
        d
    }
}

/// Where a failed install's requirement is written: pip's error lines name the requirement
/// (`No matching distribution found for X`, `Could not find a version that satisfies the
/// requirement X`); the answer names the dependency file and line that asked for it.
pub fn explain(dir: &Path, errors: &[String]) -> Option<String> {
    let wanted = errors.iter().find_map(|l| {
        [
            "No matching distribution found for ",
            "Could not find a version that satisfies the requirement ",
        ]
        .iter()
        .find_map(|m| l.split_once(m).map(|(_, r)| r.split_whitespace().next().unwrap_or("").to_string()))
    })?;
    let bare = |r: &str| -> String {
        r.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
            .replace('_', "-")
    };
    for file in ["requirements.txt", "pyproject.toml", "environment.yml", "uv.lock", "poetry.lock"] {
        let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let l = line
                .trim()
                .trim_start_matches("- ")
                .trim_matches(|c| c == '"' || c == '\'' || c == ',');
            if l == wanted || (file == "requirements.txt" && bare(l) == bare(&wanted) && !l.is_empty()) {
                return Some(format!(
                    "{file}, line {}: {} could not be installed (pip's error is above)",
                    i + 1,
                    line.trim()
                ));
            }
        }
    }
    Some(format!("{wanted} could not be installed (pip's error is above)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Project, String>) {
        let dir = tempfile::tempdir().unwrap();
        for (n, c) in files {
            std::fs::write(dir.path().join(n), c).unwrap();
        }
        let p = detect(dir.path());
        (dir, p)
    }

    #[test]
    fn requirements_runtime_procfile() {
        let (_d, p) = project(&[
            ("requirements.txt", "flask==3.0\n"),
            ("runtime.txt", "python-3.11\n"),
            ("Procfile", "web: gunicorn app:app -b 0.0.0.0:$PORT\n"),
            ("app.py", ""),
            ("apt.txt", "libgomp1 # for lightgbm\n\n"),
        ]);
        let p = p.unwrap();
        assert_eq!(p.python.as_deref(), Some("3.11"));
        assert_eq!(p.dependencies, Dependencies::Requirements);
        assert_eq!(p.apt, vec!["libgomp1"]);
        assert_eq!(p.start, Start::Shell("gunicorn app:app -b 0.0.0.0:$PORT".into()));
        let d = p.dockerfile(None);
        assert!(d.contains("FROM python:3.11-slim\n"), "{d}");
        // The dependency layer comes from requirements.txt alone, before the source.
        let deps = d.find("COPY requirements.txt /app/").unwrap();
        let src = d.find("COPY --chown=1000:1000 . /app/").unwrap();
        assert!(deps < d.find("pip install -r requirements.txt").unwrap() && deps < src);
        assert!(d.contains("apt-get install -y --no-install-recommends libgomp1"));
        assert!(d.contains("USER 1000:1000"));
    }

    #[test]
    fn pyproject_with_and_without_a_lock() {
        let py = "[project]\nname = \"demo\"\nrequires-python = \">=3.10,<4\"\ndependencies = [\"numpy>=1.26\", \"flask\"]\n[build-system]\nrequires = [\"setuptools\"]\n";
        let (_d, p) = project(&[("pyproject.toml", py), ("main.py", "")]);
        let p = p.unwrap();
        assert_eq!(p.python.as_deref(), Some("3.10"));
        assert!(p.installable);
        assert_eq!(p.start, Start::Script("main.py".into()));
        assert_eq!(
            p.dependencies,
            Dependencies::Listed {
                from: vec!["pyproject.toml".into()],
                packages: vec!["numpy>=1.26".into(), "flask".into()]
            }
        );
        let lock = "version = 1\n[[package]]\nname = \"demo\"\nversion = \"0.1.0\"\nsource = { editable = \".\" }\n[[package]]\nname = \"numpy\"\nversion = \"1.26.4\"\nsource = { registry = \"https://pypi.org/simple\" }\n";
        let (_d, p) = project(&[("pyproject.toml", py), ("uv.lock", lock)]);
        let p = p.unwrap();
        assert_eq!(
            p.dependencies,
            Dependencies::Listed {
                from: vec!["pyproject.toml".into(), "uv.lock".into()],
                packages: vec!["numpy==1.26.4".into()]
            }
        );
        assert!(p
            .dockerfile(None)
            .contains("COPY pyproject.toml uv.lock /app/\nRUN pip install 'numpy==1.26.4' && pip freeze"));
    }

    #[test]
    fn environment_yml_and_notebooks() {
        let env = "name: x\ndependencies:\n  - python=3.9\n  - pip\n  - pip:\n    - pandas==2.2\n";
        let (_d, p) = project(&[("environment.yml", env), ("analysis.ipynb", "{}")]);
        let p = p.unwrap();
        assert_eq!(p.python.as_deref(), Some("3.9"));
        assert_eq!(p.start, Start::Notebook);
        let d = p.dockerfile(Some("local/py:1"));
        assert!(d.starts_with("# Generated") && d.contains("FROM local/py:1\n"));
        assert!(d.contains("pip install 'pandas==2.2' notebook"), "{d}");
        let (_d, p) = project(&[("environment.yml", "dependencies: [numpy]\n")]);
        assert!(p.unwrap_err().contains("\"numpy\" is a conda package"));
    }

    #[test]
    fn a_failed_requirement_is_found_in_its_file() {
        let (d, _) = project(&[("requirements.txt", "flask\n\ntinylib==9.9  # pinned\n")]);
        let errors = vec!["ERROR: No matching distribution found for tinylib==9.9".to_string()];
        assert_eq!(
            explain(d.path(), &errors).unwrap(),
            "requirements.txt, line 3: tinylib==9.9  # pinned could not be installed (pip's error is above)"
        );
        assert_eq!(explain(d.path(), &["ERROR: something else".into()]), None);
    }

    #[test]
    fn not_a_project_names_what_was_looked_for() {
        let (_d, p) = project(&[("app.py", "")]);
        let e = p.unwrap_err();
        assert!(e.contains("requirements.txt, pyproject.toml, environment.yml"), "{e}");
        let (_d, p) = project(&[("requirements.txt", ""), ("runtime.txt", "three")]);
        assert!(p.unwrap_err().contains("runtime.txt: \"three\" is not a Python version"));
    }
}
