//! Prints what `Ovmf::parse` finds in the files named on the command line (a debugging aid;
//! `measure ovmf` is the user-facing command).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for path in std::env::args().skip(1) {
        let ovmf = ovmf::Ovmf::parse(std::fs::read(&path)?)?;
        println!("{path}: {}", serde_json::to_string_pretty(&ovmf.report())?);
    }
    Ok(())
}
