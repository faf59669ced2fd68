//! The MQTT transport against a real mosquitto: MQTT 5 and 3.1.1 each deliver an incident; TLS
//! with a CA made by the test and a password file delivers one too; and what an operator must
//! be able to read in the log when the broker's certificate comes from another CA or the
//! password is wrong, with nothing delivered and the node still running.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

const USER: &str = "cityeye";
const PASSWORD: &str = "s3cret-pw";
/// The broker's address in the node config, replaced by each test's own `[mqtt]` lines.
const URL_LINE: &str = "url = \"mqtt://127.0.0.1:0\"";

/// The kerb config of the shared tests on `camera`, with `mqtt` instead of its broker URL.
fn node_config(mqtt: &str, camera: &str) -> String {
    let text = kerb_config(0, false, camera, 1.0);
    assert!(text.contains(URL_LINE));
    text.replace(URL_LINE, mqtt)
}

/// vtest.avi as a camera: the parked car at the kerb starts an incident after 1 s.
fn parked_car() -> String {
    format!("file://{}", shared("testdata/vtest.avi").display())
}

/// A camera with nothing to find, for tests about the connection only.
const TEST_PATTERN: &str = "test://smpte?width=320&height=240&fps=5";

fn wait_for_incident(subscriber: &Subscriber, appliance: &Appliance, broker: &Mosquitto) {
    let messages =
        subscriber.wait_until(Duration::from_secs(60), |m| !incidents(m, "start").is_empty());
    assert!(
        !incidents(&messages, "start").is_empty(),
        "no incident delivered\nnode:\n{}\nbroker:\n{}",
        appliance.log(),
        broker.log()
    );
}

/// Waits for `text` in the appliance's log; returns the log.
fn wait_for_log(appliance: &Appliance, text: &str) -> String {
    for _ in 0..300 {
        let log = appliance.log();
        if log.contains(text) {
            return log;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("`{text}` never appeared in the log:\n{}", appliance.log());
}

#[test]
fn mqtt_5_and_3_1_1_both_deliver_an_incident() {
    for (version, protocol) in [("5", "p5"), ("3.1.1", "p2")] {
        let broker = Mosquitto::start();
        let subscriber = Subscriber::connect(broker.port, "cityeye/#");
        let mqtt = format!("url = \"mqtt://127.0.0.1:{}\"\nversion = \"{version}\"", broker.port);
        let (_dir, config) = write_config(&node_config(&mqtt, &parked_car()));
        let appliance = Appliance::run(&config);

        wait_for_incident(&subscriber, &appliance, &broker);
        // mosquitto logs each client's protocol: p2 is 3.1.1, p5 is 5.
        let connected = format!("as cityeye-edge-test ({protocol},");
        assert!(broker.log().contains(&connected), "MQTT {version} not used:\n{}", broker.log());
    }
}

/// A CA and, signed by it, a certificate for `localhost` (not for 127.0.0.1), as PEM files in
/// `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki(dir: &Path, name: &str) -> Pki {
    let ca = ca(&format!("cityeye test CA {name}"));
    let key = KeyPair::generate().unwrap();
    let cert =
        CertificateParams::new(vec!["localhost".into()]).unwrap().signed_by(&key, &ca).unwrap();
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-broker.pem")),
        key: dir.join(format!("{name}-broker.key")),
    };
    std::fs::write(&pki.ca, ca.pem()).unwrap();
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

/// mosquitto with an anonymous plain listener (`broker.port`, for the test's subscriber) and a
/// TLS listener on `tls_port` that wants user `USER` with `PASSWORD`.
struct SecureBroker {
    broker: Mosquitto,
    tls_port: u16,
    /// The CA that signed the broker's certificate, and one that did not.
    ca: PathBuf,
    other_ca: PathBuf,
    dir: tempfile::TempDir,
}

fn secure_broker() -> SecureBroker {
    let dir = tempfile::tempdir().unwrap();
    let right = pki(dir.path(), "right");
    let other = pki(dir.path(), "other");
    let passwords = dir.path().join("passwords");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args([USER, PASSWORD])
        .status()
        .expect("mosquitto_passwd comes with mosquitto");
    assert!(made.success());
    let tls_port = free_port();
    let broker = Mosquitto::start_with(
        free_port(),
        &format!(
            "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
             password_file {}\nallow_anonymous false\n",
            right.ca.display(),
            right.cert.display(),
            right.key.display(),
            passwords.display()
        ),
    );
    SecureBroker { broker, tls_port, ca: right.ca, other_ca: other.ca, dir }
}

impl SecureBroker {
    /// `[mqtt]` lines reaching the TLS listener as `host`, trusting `ca`, with `password`.
    fn mqtt(&self, host: &str, ca: &Path, password: &str, version: &str) -> String {
        let password_file = self.dir.path().join(format!("password-{password}-{version}"));
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        format!(
            "url = \"mqtts://{host}:{}\"\nversion = \"{version}\"\nca_file = \"{}\"\n\
             username = \"{USER}\"\npassword_file = \"{}\"",
            self.tls_port,
            ca.display(),
            password_file.display()
        )
    }

    /// Runs a node with `mqtt`, which the broker's certificate must fail: the log says why
    /// (`reason`), the node retries and keeps running, and nothing reaches the broker.
    fn assert_untrusted(&self, mqtt: &str, reason: &str) {
        let subscriber = Subscriber::connect(self.broker.port, "cityeye/#");
        let (_dir, config) = write_config(&node_config(mqtt, TEST_PATTERN));
        let mut appliance = Appliance::run(&config);

        let log = wait_for_log(&appliance, "MQTT connection failed: TLS:");
        assert!(log.contains(&format!("MQTT connection failed: TLS: {reason}")), "{log}");
        wait_for_log(&appliance, "retrying in");
        std::thread::sleep(Duration::from_secs(3));
        assert!(subscriber.messages().is_empty(), "{:?}", subscriber.messages());
        assert!(!self.broker.log().contains("as cityeye-edge-test"), "{}", self.broker.log());
        assert!(appliance.is_running(), "the node keeps running:\n{}", appliance.log());
        assert!(appliance.stop(), "and stops on SIGTERM");
    }
}

#[test]
fn tls_with_a_password_file_delivers_an_incident() {
    let secure = secure_broker();
    let subscriber = Subscriber::connect(secure.broker.port, "cityeye/#");
    let mqtt = secure.mqtt("localhost", &secure.ca, PASSWORD, "5");
    let (_dir, config) = write_config(&node_config(&mqtt, &parked_car()));

    let check = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&check.stdout);
    let line = format!(
        "mqtt mqtts://localhost:{}, MQTT 5, CA {}, user {USER}, topics under cityeye/edge-test/",
        secure.tls_port,
        secure.ca.display()
    );
    assert!(printed.contains(&line), "check prints the link:\n{printed}");

    let appliance = Appliance::run(&config);
    wait_for_incident(&subscriber, &appliance, &secure.broker);
    let log = secure.broker.log();
    let connected = format!("on port {}", secure.tls_port);
    assert!(log.contains(&connected), "the node came over TLS:\n{log}");
    assert!(log.contains(&format!("(p5, c1, k30, u'{USER}')")), "{log}");
}

#[test]
fn a_broker_certificate_from_another_ca_is_refused() {
    let secure = secure_broker();
    secure.assert_untrusted(
        &secure.mqtt("localhost", &secure.other_ca, PASSWORD, "5"),
        "the broker's certificate is not signed by a CA this node trusts (mqtt.ca_file): \
         invalid peer certificate: UnknownIssuer",
    );
}

#[test]
fn a_broker_certificate_for_another_name_is_refused() {
    let secure = secure_broker();
    secure.assert_untrusted(
        &secure.mqtt("127.0.0.1", &secure.ca, PASSWORD, "5"),
        "the broker's certificate is not for the host in mqtt.url: ",
    );
}

#[test]
fn a_wrong_password_is_refused_with_a_clear_error() {
    let secure = secure_broker();
    let subscriber = Subscriber::connect(secure.broker.port, "cityeye/#");
    let mut appliances: Vec<_> = ["5", "3.1.1"]
        .iter()
        .map(|version| {
            let mqtt = secure.mqtt("localhost", &secure.ca, "wrong-pw", version);
            let (dir, config) = write_config(&node_config(&mqtt, TEST_PATTERN));
            (dir, Appliance::run(&config))
        })
        .collect();

    for (_, appliance) in &mut appliances {
        let log = wait_for_log(appliance, "MQTT connection failed:");
        assert!(
            log.contains(
                "MQTT connection failed: the broker refused the connection: not authorised \
                 (NotAuthorized); check mqtt.username and mqtt.password_file"
            ),
            "{log}"
        );
        assert!(!log.contains("wrong-pw"), "the password stays out of the log:\n{log}");
        assert!(appliance.is_running(), "the node keeps running:\n{}", appliance.log());
    }
    assert!(subscriber.messages().is_empty(), "{:?}", subscriber.messages());
}
