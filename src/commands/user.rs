//! `cityeye user add NAME --role viewer|installer`: adds a user of the node's page to
//! `http.users_file` (see [`crate::http::auth`]), asking for the password twice without echo.
//! A running node reads the file at start: restart it for the new user.

use std::path::Path;
use std::process::ExitCode;

use super::{EXIT_CONFIG, load_config};
use crate::http::auth::{self, Role};

/// Where the password comes from when stdin is not a terminal (a script): its first line.
fn read_password() -> Result<String, String> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password: {e}"))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let password = rpassword::prompt_password("Password: ")
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let again = rpassword::prompt_password("Again: ")
        .map_err(|e| format!("cannot read the password: {e}"))?;
    if password != again {
        return Err("the two passwords differ".into());
    }
    Ok(password)
}

pub fn add(config: &Path, name: &str, role: Role) -> ExitCode {
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(path) = &config.http.users_file else {
        eprintln!(
            "error: {}: http.users_file is not set: name the users file there first",
            config.path.display()
        );
        return ExitCode::from(EXIT_CONFIG);
    };
    let added = read_password().and_then(|password| auth::add_user(path, name, role, &password));
    match added {
        Ok(replaced) => {
            let done = if replaced { "updated" } else { "added" };
            println!("{done} {} user {name} in {}", role.name(), path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
