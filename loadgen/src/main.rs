fn main() -> anyhow::Result<()> {
    anyhow::bail!("nird-loadgen: not built yet")
}
