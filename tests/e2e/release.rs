//! The static Linux release binary (x86_64-unknown-linux-musl, for containers) that
//! `scripts/release-build` makes: no dynamic loader, and it answers git against the local GitHub.
//! `.ci/run` builds it and sets GCGA_MUSL_HELPER; without it this test says it skips, unless
//! GCGA_REQUIRE_TOOLS is set (CI): then it fails.

use std::path::PathBuf;

use crate::support::*;

#[track_caller]
fn musl_helper() -> Option<PathBuf> {
    match std::env::var_os("GCGA_MUSL_HELPER").filter(|v| !v.is_empty()) {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            skip(
                "no static release binary: GCGA_MUSL_HELPER unset (scripts/release-build x86_64-unknown-linux-musl makes it)",
            );
            None
        }
    }
}

/// The program header types of a 64-bit little-endian ELF file.
fn program_header_types(elf: &[u8]) -> Vec<u32> {
    assert_eq!(
        &elf[..6],
        b"\x7fELF\x02\x01",
        "not a 64-bit little-endian ELF file"
    );
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count)
        .map(|i| {
            let o = phoff + i * size;
            u32::from_le_bytes(elf[o..o + 4].try_into().unwrap())
        })
        .collect()
}

#[test]
fn the_static_release_binary_has_no_loader_and_answers_git() {
    let Some(helper) = musl_helper() else { return };
    const PT_INTERP: u32 = 3;
    let types = program_header_types(&std::fs::read(&helper).unwrap());
    assert!(!types.is_empty());
    assert!(
        !types.contains(&PT_INTERP),
        "{} asks for a dynamic loader: not static",
        helper.display()
    );
    // Its checksum file matches (sha256sum -c).
    let dir = helper.parent().unwrap();
    let name = helper.file_name().unwrap().to_str().unwrap();
    let out = run(
        std::process::Command::new("sha256sum")
            .current_dir(dir)
            .args(["-c", &format!("{name}.sha256")]),
        b"",
    );
    assert_ok(&out);
    assert_eq!(stdout(&out), format!("{name}: OK\n"));

    let gh = world();
    let env = Env::new(&gh, 1001);
    env.append_gitconfig(&format!(
        "[credential \"{}\"]\n\thelper =\n\thelper = {} --app-id 1001 --private-key {} --host {} --cache file\n",
        env.git_url,
        helper.display(),
        env.key_path.display(),
        env.host
    ));
    let token = token_of(&env.fill("octo/dotfiles.git"));
    assert_eq!(token_of(&env.fill("octo/dotfiles.git")), token);
    assert_eq!(gh.mint_count(), 1, "cached by the static binary");
    assert_ok(&env.clone_repo("octo", "dotfiles"));
}
