//! The Debian package on a clean Debian 12. `scripts/package --no-build` packs the release binary
//! that `cargo test --release` built; lintian checks it, and apt installs, upgrades, removes and
//! purges it inside a minbase bookworm root made by debootstrap, pulling the dependencies from
//! the Debian mirror as a real edge box would. The model comes from ../shared, as an installer
//! would bring it.
//!
//! Needs root (chroot, mount) and the Debian mirror the host's apt uses. The debootstrap root is
//! cached as a tarball under target/package-test/ (in CARGO_TARGET_DIR when set), and so are the
//! downloaded .debs: the first run takes a few minutes longer than the next ones.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

const CHROOT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
const CONFIG: &str = "/etc/cityeye/cityeye.toml";
const MODEL: &str = "/var/lib/cityeye/models/yolox_nano.onnx";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The binary `cargo test --release` built, as `target/release/cityeye` in whatever target
/// folder cargo used (CARGO_TARGET_DIR or the checkout's target/).
fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cityeye"))
}

fn target_dir() -> PathBuf {
    let release = binary().parent().expect("the binary is in target/release");
    release.parent().expect("target/release is in the target folder").to_path_buf()
}

fn work_dir() -> PathBuf {
    let dir = target_dir().join("package-test");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `command`, panicking with its output when it fails.
fn ok(command: &mut Command) -> String {
    let out = command.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The Debian mirror the host's apt uses, so the test reaches whatever mirror this machine is
/// allowed to: `CITYEYE_DEBIAN_MIRROR`, else the first `/debian` URI in /etc/apt/sources.list*.
fn mirror() -> String {
    if let Ok(url) = std::env::var("CITYEYE_DEBIAN_MIRROR") {
        return url;
    }
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for source in files.iter().filter_map(|f| fs::read_to_string(f).ok()) {
        let lines = source.lines().filter(|l| !l.trim_start().starts_with('#'));
        for word in lines.flat_map(str::split_whitespace) {
            if word.starts_with("http") && word.trim_end_matches('/').ends_with("/debian") {
                return word.to_owned();
            }
        }
    }
    "http://deb.debian.org/debian".into()
}

/// A minbase bookworm root as a tarball: debootstrap once, then reused by every run.
fn base_tarball() -> PathBuf {
    let tarball = work_dir().join("bookworm-minbase.tar");
    if tarball.exists() {
        return tarball;
    }
    let build = work_dir().join("debootstrap");
    let _ = fs::remove_dir_all(&build);
    let started = Instant::now();
    ok(Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&build)
        .arg(mirror()));
    eprintln!("debootstrap took {:.0} s", started.elapsed().as_secs_f64());
    let partial = tarball.with_extension("tar.partial");
    ok(Command::new("tar").arg("-C").arg(&build).arg("-cf").arg(&partial).arg("."));
    fs::rename(&partial, &tarball).unwrap();
    fs::remove_dir_all(&build).unwrap();
    tarball
}

/// A throwaway Debian 12 root, unpacked afresh from the cached tarball.
struct Chroot {
    root: PathBuf,
    archives: PathBuf,
}

impl Chroot {
    fn new() -> Chroot {
        let tarball = base_tarball();
        let root = work_dir().join("root");
        // A root left by a run that was killed; no mount outlives a command (see `command`).
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        ok(Command::new("tar").arg("-C").arg(&root).arg("-xf").arg(&tarball));
        // dpkg without an fsync per file, as in Debian's own build chroots: a throwaway root
        // needs no crash safety, and the dependencies' 330 packages unpack much faster.
        fs::write(root.join("etc/dpkg/dpkg.cfg.d/unsafe-io"), "force-unsafe-io\n").unwrap();
        let archives = work_dir().join("apt-archives");
        fs::create_dir_all(archives.join("partial")).unwrap();
        Chroot { root, archives }
    }

    /// `path` inside the root, seen from the host.
    fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// `args` run inside the root with a clean environment, /proc mounted and apt's download
    /// cache shared between runs. The mounts live in a private mount namespace, so they vanish
    /// with the command even when the test fails.
    fn command(&self, args: &[&str]) -> Command {
        let script = r#"set -e
root=$1 archives=$2; shift 2
mount -t proc proc "$root/proc"
mount --bind "$archives" "$root/var/cache/apt/archives"
exec chroot "$root" "$@""#;
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--fork", "--", "sh", "-c", script, "sh"])
            .arg(&self.root)
            .arg(&self.archives)
            .args(args)
            .env_clear()
            .env("PATH", CHROOT_PATH)
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&mut self.command(args))
    }

    /// `args` as the service runs them: user and group cityeye, HOME its state folder.
    fn as_cityeye(&self, args: &[&str]) -> Output {
        let mut all = vec![
            "setpriv",
            "--reuid=cityeye",
            "--regid=cityeye",
            "--init-groups",
            "env",
            "HOME=/var/lib/cityeye",
        ];
        all.extend(args);
        self.run(&all)
    }

    /// Owner, group and octal mode, as the root's own passwd and group files name them.
    fn stat(&self, path: &str) -> String {
        self.ok(&["stat", "-c", "%U:%G %a", path]).trim().to_owned()
    }

    fn apt(&self, args: &[&str]) -> String {
        let mut all = vec!["apt-get", "-y", "-q", "--no-install-recommends"];
        all.extend(args);
        let started = Instant::now();
        let out = self.ok(&all);
        eprintln!("apt-get {args:?} took {:.0} s", started.elapsed().as_secs_f64());
        out
    }

    fn package_status(&self) -> String {
        let out = self.run(&["dpkg-query", "-W", "-f=${Status} ${Version}", "cityeye"]);
        text(&out.stdout)
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Packs the release binary with scripts/package (`--fast`: lighter compression than a release,
/// same contents) and returns the .deb's path.
fn build_deb(out: &Path, version: Option<&str>) -> PathBuf {
    assert!(binary().exists(), "{} is built by cargo test --release", binary().display());
    let deb = out.join(format!("cityeye_{}.deb", version.unwrap_or("first")));
    let mut command = Command::new(repo("scripts/package"));
    command
        .args(["--no-build", "--fast", "--quiet", "--output"])
        .arg(&deb)
        .env("CARGO_TARGET_DIR", target_dir())
        .current_dir(repo(""));
    if let Some(version) = version {
        command.args(["--deb-version", version]);
    }
    let started = Instant::now();
    let printed = ok(&mut command);
    eprintln!("scripts/package took {:.1} s", started.elapsed().as_secs_f64());
    assert!(printed.contains(deb.to_str().unwrap()), "scripts/package prints the path: {printed}");
    deb
}

/// The package as scripts/package makes it, built once for every test here (they run side by
/// side, and scripts/package writes the manual pages into the one target folder).
fn first_deb() -> &'static Path {
    static FIRST: OnceLock<PathBuf> = OnceLock::new();
    FIRST.get_or_init(|| {
        let out = work_dir().join("debs");
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(&out).unwrap();
        build_deb(&out, None)
    })
}

fn deb_field(deb: &Path, field: &str) -> String {
    ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg(field)).trim().to_owned()
}

fn deb_control_file(deb: &Path, name: &str) -> String {
    ok(Command::new("dpkg-deb").arg("-I").arg(deb).arg(name))
}

#[test]
fn the_package_installs_upgrades_and_purges_on_a_clean_debian_12() {
    let started = Instant::now();
    assert_eq!(
        ok(Command::new("id").arg("-u")).trim(),
        "0",
        "this test needs root (debootstrap, chroot, mount)"
    );
    let out = tempfile::tempdir_in(work_dir()).unwrap();
    let first = first_deb();
    let second = build_deb(out.path(), Some("0.1.0-2"));

    // What the package says about itself.
    assert_eq!(deb_field(first, "Package"), "cityeye");
    assert_eq!(deb_field(first, "Version"), "0.1.0-1");
    let depends = deb_field(first, "Depends");
    for needed in [
        "libgstreamer1.0-0",
        "libstdc++6",
        "gstreamer1.0-plugins-base",
        "gstreamer1.0-plugins-good",
        "gstreamer1.0-plugins-bad",
        "gstreamer1.0-libav",
        "adduser",
    ] {
        assert!(depends.contains(needed), "Depends has {needed}: {depends}");
    }
    assert_eq!(deb_control_file(first, "conffiles").trim(), CONFIG);
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(first));
    assert!(
        listing.contains("./usr/lib/cityeye/libonnxruntime.so -> libonnxruntime.so.1.31.1"),
        "{listing}"
    );
    // Detector weights are the site's; the only weights packaged are the plate reader's.
    let weights: Vec<&str> = listing.lines().filter(|l| l.contains(".onnx")).collect();
    assert_eq!(weights.len(), 2, "{weights:?}");
    for model in ["det.onnx", "rec.onnx"] {
        let packaged = format!(" ./usr/share/cityeye/plates/{model}");
        assert!(weights.iter().any(|l| l.ends_with(&packaged)), "{weights:?}");
    }
    // The manual pages (made from the CLI by `cityeye man`, gzipped), the licences of all it
    // bundles, the Debian changelog and the lintian overrides with their reasons.
    for file in [
        "./usr/share/man/man1/cityeye.1.gz",
        "./usr/share/man/man1/cityeye-run.1.gz",
        "./usr/share/man/man1/cityeye-check.1.gz",
        "./usr/share/doc/cityeye/copyright",
        "./usr/share/doc/cityeye/changelog.Debian.gz",
        "./usr/share/doc/cityeye/onnxruntime/LICENSE",
        "./usr/share/doc/cityeye/onnxruntime/ThirdPartyNotices.txt",
        "./usr/share/doc/cityeye/rust-crates-licenses.txt",
        "./usr/share/doc/cityeye/plates/LICENSE",
        "./usr/share/cityeye/plates/dict.txt",
        "./usr/share/lintian/overrides/cityeye",
    ] {
        assert!(listing.contains(&format!(" {file}\n")), "{file} is packaged:\n{listing}");
    }
    assert!(!listing.contains("cityeye-man.1"), "the hidden command has no page:\n{listing}");
    // Every file the package installs has its checksum, for dpkg --verify and debsums.
    let md5sums = deb_control_file(first, "md5sums");
    let files = listing.lines().filter(|l| l.starts_with('-')).count();
    assert_eq!(md5sums.lines().count(), files, "one line a file:\n{md5sums}\n{listing}");
    assert!(md5sums.contains("  usr/bin/cityeye\n"), "{md5sums}");
    // The changelog's newest entry is the version cargo deb builds from Cargo.toml.
    let changelog = fs::read_to_string(repo("debian/changelog")).unwrap();
    assert!(changelog.starts_with("cityeye (0.1.0-1) "), "debian/changelog: {changelog}");
    // Enabled on install but never started then (the config needs editing and the model must
    // be supplied first); restarted on upgrade only if it was running.
    let postinst = deb_control_file(first, "postinst");
    assert!(postinst.contains("deb-systemd-helper enable cityeye.service"), "{postinst}");
    assert!(postinst.contains("deb-systemd-invoke try-restart cityeye.service"), "{postinst}");
    assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");

    // Install: apt resolves the dependencies from the mirror.
    let chroot = Chroot::new();
    fs::copy(first, chroot.path("/tmp/cityeye_first.deb")).unwrap();
    fs::copy(&second, chroot.path("/tmp/cityeye_second.deb")).unwrap();
    chroot.ok(&["apt-get", "update", "-q"]);
    chroot.apt(&["install", "/tmp/cityeye_first.deb"]);
    assert_eq!(chroot.package_status(), "install ok installed 0.1.0-1");
    // dpkg kept the checksums and every installed file matches them.
    assert!(chroot.path("/var/lib/dpkg/info/cityeye.md5sums").is_file());
    assert_eq!(chroot.ok(&["dpkg", "--verify", "cityeye"]), "");

    assert_eq!(chroot.ok(&["cityeye", "--version"]).trim(), "cityeye 0.1.0");
    let algorithms = chroot.ok(&["cityeye", "algorithms"]);
    assert!(algorithms.contains("illegal_parking"), "{algorithms}");
    // The packaged plate models read a plate, found where the package put them.
    fs::copy(repo("../shared/models/yolox_nano.onnx"), chroot.path("/tmp/yolox_nano.onnx"))
        .unwrap();
    fs::copy(repo("../shared/testdata/plates/db1.jpg"), chroot.path("/tmp/db1.jpg")).unwrap();
    let plates_config = "[node]\nid = \"gate\"\ndata_dir = \"/tmp/gate\"\n[plates]\n\
        [[models]]\nname = \"coco\"\npath = \"/tmp/yolox_nano.onnx\"\nformat = \"yolox\"\n\
        classes = \"/usr/share/cityeye/models/coco80.txt\"\n\
        [[cameras]]\nid = \"gate\"\nurl = \"file:///tmp/db1.jpg\"\nmodel = \"coco\"\n\
        plates = \"frame\"\n";
    fs::write(chroot.path("/tmp/gate.toml"), plates_config).unwrap();
    let preview = chroot.ok(&[
        "cityeye",
        "preview",
        "--json",
        "--config",
        "/tmp/gate.toml",
        "--camera",
        "gate",
        "--input",
        "/tmp/db1.jpg",
        "--out",
        "/tmp/gate.jpg",
    ]);
    assert!(preview.contains("\"text\":\"皖ACJ218\""), "{preview}");
    assert!(chroot.path("/usr/lib/cityeye/libonnxruntime.so.1.31.1").is_file());
    let crates =
        fs::read_to_string(chroot.path("/usr/share/doc/cityeye/rust-crates-licenses.txt")).unwrap();
    for linked in ["\n  tokio ", "\n  gstreamer ", "\n  rusqlite "] {
        assert!(crates.contains(linked), "{linked:?} has its licence listed");
    }
    for not_linked in ["\n  criterion ", "\n  cityeye "] {
        assert!(!crates.contains(not_linked), "{not_linked:?} is not in the binary");
    }
    assert_eq!(
        fs::read_to_string(chroot.path("/usr/share/doc/cityeye/copyright")).unwrap(),
        fs::read_to_string(repo("debian/copyright")).unwrap(),
        "the package's copyright file is debian/copyright, not one cargo deb made up"
    );
    assert_eq!(
        fs::read_link(chroot.path("/usr/lib/cityeye/libonnxruntime.so")).unwrap(),
        Path::new("libonnxruntime.so.1.31.1")
    );
    // The only ONNX Runtime in the root is the package's.
    assert!(!chroot.path("/usr/local/lib/cityeye").exists());
    for file in [
        "/usr/lib/systemd/system/cityeye.service",
        "/usr/share/cityeye/pipelines/rtsp.pipeline",
        "/usr/share/cityeye/models/coco80.txt",
        "/usr/share/cityeye/models/yolox_nano.toml",
        "/usr/share/doc/cityeye/examples/cityeye.toml",
    ] {
        assert!(chroot.path(file).is_file(), "{file} is installed");
    }
    assert!(
        chroot.path("/etc/systemd/system/multi-user.target.wants/cityeye.service").is_symlink(),
        "the unit is enabled"
    );
    let user = chroot.ok(&["getent", "passwd", "cityeye"]);
    assert!(user.trim_end().ends_with(":/var/lib/cityeye:/usr/sbin/nologin"), "{user}");
    assert!(chroot.ok(&["getent", "group", "cityeye"]).starts_with("cityeye:"));
    assert_eq!(chroot.stat(CONFIG), "root:cityeye 640");
    assert_eq!(chroot.stat("/var/lib/cityeye"), "cityeye:cityeye 750");
    assert_eq!(chroot.stat("/var/lib/cityeye/models"), "root:cityeye 750");

    // The unit as installed, against the root's files (ExecStart's binary must exist there, and
    // Documentation='s man page: systemd-analyze asks the host's man, pointed into the root).
    ok(Command::new("systemd-analyze")
        .env("MANPATH", chroot.path("/usr/share/man"))
        .arg("verify")
        .arg(format!("--root={}", chroot.root.display()))
        .arg("/usr/lib/systemd/system/cityeye.service"));
    let security = ok(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--root={}", chroot.root.display()))
        .arg("cityeye.service"));
    let exposure: f64 = security
        .lines()
        .find_map(|l| l.split("Overall exposure level for cityeye.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    eprintln!("systemd-analyze security: exposure {exposure}");
    assert!(exposure <= 2.0, "the unit stays hardened (exposure {exposure}):\n{security}");

    // Right after install the example config is honest: the model and the broker password are
    // the installer's to supply, and `check` says so (as the service's user, as ExecStartPre).
    let check = ["cityeye", "check", "--config", CONFIG];
    let out = chroot.as_cityeye(&check);
    let errors = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{errors}");
    assert!(errors.contains(&format!("model file not found: {MODEL}")), "{errors}");
    assert!(errors.contains("file not found: /etc/cityeye/mqtt.password"), "{errors}");

    // The installer's steps; then the config checks and ONNX Runtime loads the model from
    // /usr/lib/cityeye, with nothing else on the system.
    fs::copy(repo("../shared/models/yolox_nano.onnx"), chroot.path(MODEL)).unwrap();
    fs::set_permissions(chroot.path(MODEL), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(chroot.path("/etc/cityeye/mqtt.password"), "s3cret\n").unwrap();
    chroot.ok(&["chown", "root:cityeye", "/etc/cityeye/mqtt.password"]);
    chroot.ok(&["chmod", "0640", "/etc/cityeye/mqtt.password"]);
    let out = chroot.as_cityeye(&check);
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{printed}\n{}", text(&out.stderr));
    assert!(printed.contains(&format!("config {CONFIG}: valid")), "{printed}");
    assert!(printed.contains("output  output: Tensor<f32>(1, 3549, 85)"), "{printed}");

    // Upgrade over an edited config: dpkg keeps the installer's edit and the permissions.
    let config = fs::read_to_string(chroot.path(CONFIG)).unwrap();
    let edited = config.replace(r#"id = "edge-0412""#, r#"id = "edge-upgraded""#);
    assert_ne!(config, edited, "the example has node.id edge-0412");
    fs::write(chroot.path(CONFIG), &edited).unwrap();
    chroot.apt(&["install", "/tmp/cityeye_second.deb"]);
    assert_eq!(chroot.package_status(), "install ok installed 0.1.0-2");
    assert_eq!(fs::read_to_string(chroot.path(CONFIG)).unwrap(), edited);
    for leftover in [".dpkg-dist", ".dpkg-new", ".dpkg-old"] {
        assert!(!chroot.path(&format!("{CONFIG}{leftover}")).exists(), "{leftover}");
    }
    assert_eq!(chroot.stat(CONFIG), "root:cityeye 640");
    let out = chroot.as_cityeye(&check);
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{printed}\n{}", text(&out.stderr));
    assert!(printed.contains("topics under cityeye/edge-upgraded/"), "{printed}");

    // Remove keeps the config and the node's state; purge takes them, the user stays.
    chroot.apt(&["remove", "cityeye"]);
    assert!(chroot.package_status().starts_with("deinstall ok config-files"));
    assert!(!chroot.path("/usr/bin/cityeye").exists());
    assert!(!chroot.path("/usr/lib/cityeye/libonnxruntime.so.1.31.1").exists());
    assert_eq!(fs::read_to_string(chroot.path(CONFIG)).unwrap(), edited);
    assert!(chroot.path(MODEL).is_file());
    assert_eq!(fs::metadata(chroot.path("/var/lib/cityeye")).unwrap().mode() & 0o7777, 0o750);

    chroot.apt(&["purge", "cityeye"]);
    let status = chroot.package_status();
    assert!(status.is_empty() || status.contains("not-installed"), "{status}");
    assert!(!chroot.path("/etc/cityeye").exists());
    assert!(!chroot.path("/var/lib/cityeye").exists());
    assert!(
        !chroot.path("/etc/systemd/system/multi-user.target.wants/cityeye.service").is_symlink()
    );
    assert!(chroot.ok(&["getent", "passwd", "cityeye"]).starts_with("cityeye:"));

    eprintln!("package test took {:.0} s", started.elapsed().as_secs_f64());
}

#[test]
fn lintian_finds_no_error_or_warning_in_the_package() {
    let deb = first_deb();
    let started = Instant::now();
    // --fail-on: errors and warnings fail; informational tags are printed for a reader. The
    // package's own overrides (usr/share/lintian/overrides/cityeye) apply, each with its reason.
    // (Not --show-overrides: lintian 2.116 then fails on the overridden errors too.)
    let out = Command::new("lintian")
        .args(["--fail-on", "error,warning", "--info", "--display-info"])
        .arg(deb)
        .stdin(Stdio::null())
        .output()
        .expect("lintian is installed by scripts/setup --test-tools");
    let report = text(&out.stdout);
    eprintln!(
        "lintian took {:.1} s:\n{report}{}",
        started.elapsed().as_secs_f64(),
        text(&out.stderr)
    );
    assert!(out.status.success(), "lintian ({}):\n{report}", out.status);
    let tags: Vec<&str> = report.lines().filter(|l| !l.starts_with("N:")).collect();
    assert!(!tags.iter().any(|l| l.starts_with("E:") || l.starts_with("W:")), "{report}");
    // An override that matches nothing hides nothing, but says the package changed under it.
    for stale in ["unused-override", "mismatched-override"] {
        assert!(
            !report.contains(stale),
            "{stale}: update debian/cityeye.lintian-overrides:\n{report}"
        );
    }
}
