//! docs/cli.md carries the `--help` text of every subcommand; this keeps it
//! in sync with the binary.

use crate::common::*;

#[test]
fn cli_reference_matches_help() {
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/cli.md");
    for (heading, args) in [
        ("## zarrforge\n", vec!["--help"]),
        ("## zarrforge convert\n", vec!["convert", "--help"]),
        ("## zarrforge inspect\n", vec!["inspect", "--help"]),
        ("## zarrforge plan\n", vec!["plan", "--help"]),
        ("## zarrforge generate\n", vec!["generate", "--help"]),
        (
            "## zarrforge recipe check\n",
            vec!["recipe", "check", "--help"],
        ),
        ("## zarrforge verify\n", vec!["verify", "--help"]),
        ("## zarrforge bench\n", vec!["bench", "--help"]),
    ] {
        let run = zarrforge(None, &args, MINUTE);
        assert!(run.ok(), "{}", run.stderr);
        let start = doc
            .find(heading)
            .unwrap_or_else(|| panic!("docs/cli.md lacks the section {heading:?}"));
        let rest = &doc[start..];
        let body_start = rest.find("```text\n").expect("```text block") + "```text\n".len();
        let body_len = rest[body_start..].find("```").expect("closing ```");
        let documented = rest[body_start..body_start + body_len].trim_end();
        assert_eq!(
            documented,
            run.stdout.trim_end(),
            "docs/cli.md section {heading:?} is out of date: paste the output of zarrforge {}",
            args.join(" ")
        );
    }
}
