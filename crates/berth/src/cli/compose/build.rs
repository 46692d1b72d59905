//! `berth compose build`, `pull`, `push`: each service's image through the same code as
//! `berth build`, `berth pull` and `berth push`.

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use compose::plan;
use compose::Loaded;

use super::super::client::Client;
use super::Global;

/// Flags of `berth compose build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the base images
    #[arg(long)]
    pub pull: bool,
    /// Set build-time variables for services (KEY=VALUE)
    #[arg(long = "build-arg", value_name = "stringArray")]
    pub build_args: Vec<String>,
    /// Don't print anything to stdout
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services (default: all with a build section)
    pub services: Vec<String>,
}

/// Flags of `berth compose pull`.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Ignore images that can be built
    #[arg(long = "ignore-buildable")]
    pub ignore_buildable: bool,
    /// Pull what it can and ignore images with pull failures
    #[arg(long = "ignore-pull-failures")]
    pub ignore_pull_failures: bool,
    /// Pull without printing progress information
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// Flags of `berth compose push`.
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// Push what it can and ignore images with push failures
    #[arg(long = "ignore-push-failures")]
    pub ignore_push_failures: bool,
    /// Push without printing progress information
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

#[derive(Parser)]
struct BuildCommand {
    #[command(flatten)]
    args: super::super::build::BuildArgs,
}

/// Build one service's image (tagged with its image name and `build.tags`).
pub(super) async fn build_service(client: &Client, g: &Global<'_>, l: &Loaded, name: &str) -> Result<()> {
    build_with(client, l, name, &[], false, false, g.mode == super::progress::Mode::Quiet).await
}

#[allow(clippy::too_many_arguments)]
async fn build_with(client: &Client, l: &Loaded, name: &str, extra_args: &[String], no_cache: bool, pull: bool, quiet: bool) -> Result<()> {
    let p = &l.project;
    let svc = &p.services[name];
    let b = svc.build.as_ref().ok_or_else(|| anyhow!("service {name:?} has no build section"))?;
    let mut argv: Vec<String> = vec!["build".into(), "-t".into(), plan::image_name(p, name)];
    for t in &b.tags {
        argv.extend(["-t".into(), t.clone()]);
    }
    if let Some(f) = &b.dockerfile {
        let path = std::path::Path::new(&b.context).join(f);
        argv.extend(["-f".into(), path.display().to_string()]);
    }
    for (k, v) in &b.args {
        if let Some(v) = v {
            argv.extend(["--build-arg".into(), format!("{k}={v}")]);
        }
    }
    for a in extra_args {
        argv.extend(["--build-arg".into(), a.clone()]);
    }
    for (k, v) in &b.labels {
        argv.extend(["--label".into(), format!("{k}={v}")]);
    }
    if let Some(t) = &b.target {
        argv.extend(["--target".into(), t.clone()]);
    }
    for c in &b.cache_from {
        argv.extend(["--cache-from".into(), c.clone()]);
    }
    if let Some(n) = &b.network {
        argv.extend(["--network".into(), n.clone()]);
    }
    for h in &b.extra_hosts {
        argv.extend(["--add-host".into(), h.clone()]);
    }
    if let Some(s) = b.shm_size {
        argv.extend(["--shm-size".into(), s.to_string()]);
    }
    if no_cache || b.no_cache == Some(true) {
        argv.push("--no-cache".into());
    }
    if pull {
        argv.push("--pull".into());
    }
    if quiet {
        argv.push("-q".into());
    }
    argv.push(b.context.clone());
    let cmd = BuildCommand::try_parse_from(&argv).map_err(|e| anyhow!("service {name:?}: {e}"))?;
    eprintln!("[+] Building {name}");
    super::super::build::build(client, cmd.args)
        .await
        .with_context(|| format!("building service {name:?}"))?;
    Ok(())
}

/// Pull one image as `berth pull` does.
pub(super) async fn pull_image(client: &Client, g: &Global<'_>, image: &str) -> Result<()> {
    let a = super::super::registry::PullArgs {
        platform: None,
        quiet: g.mode == super::progress::Mode::Quiet,
        image: image.to_string(),
    };
    super::super::registry::pull(client, a).await.map(|_| ())
}

/// `berth compose build`.
pub async fn build(client: &Client, g: &Global<'_>, a: &BuildArgs) -> Result<i32> {
    let l = g.load(&a.services)?;
    let names: Vec<String> = if a.services.is_empty() {
        l.project
            .services
            .iter()
            .filter(|(_, s)| s.build.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    } else {
        a.services.clone()
    };
    for n in &names {
        if l.project.services[n].build.is_none() {
            if !a.services.is_empty() {
                eprintln!("service {n:?} has no build section; skipped");
            }
            continue;
        }
        build_with(client, &l, n, &a.build_args, a.no_cache, a.pull, a.quiet).await?;
    }
    Ok(0)
}

/// `berth compose pull`.
pub async fn pull(client: &Client, g: &Global<'_>, a: &PullArgs) -> Result<i32> {
    let l = g.load(&a.services)?;
    for (n, s) in &l.project.services {
        if !a.services.is_empty() && !a.services.contains(n) {
            continue;
        }
        if s.build.is_some() && (a.ignore_buildable || s.image.is_none()) {
            continue;
        }
        let image = plan::image_name(&l.project, n);
        let quiet = Global {
            args: g.args,
            mode: if a.quiet { super::progress::Mode::Quiet } else { g.mode },
        };
        if let Err(e) = pull_image(client, &quiet, &image).await {
            if !a.ignore_pull_failures {
                return Err(e.context(format!("service {n:?}")));
            }
            eprintln!("service {n:?}: {e:#}");
        }
    }
    Ok(0)
}

/// `berth compose push`.
pub async fn push(client: &Client, g: &Global<'_>, a: &PushArgs) -> Result<i32> {
    let l = g.load(&a.services)?;
    for (n, s) in &l.project.services {
        if !a.services.is_empty() && !a.services.contains(n) {
            continue;
        }
        let Some(image) = &s.image else { continue };
        let args = super::super::registry::PushArgs {
            all_tags: false,
            quiet: a.quiet,
            image: image.clone(),
        };
        if let Err(e) = super::super::registry::push(client, args).await {
            if !a.ignore_push_failures {
                return Err(e.context(format!("service {n:?}")));
            }
            eprintln!("service {n:?}: {e:#}");
        }
    }
    Ok(0)
}
