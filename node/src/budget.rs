//! `jointly-node budget`: what this node has spent, on which queries, and what
//! is left, read from its ledger alone (no dataset is loaded).

use crate::{NodeConfig, NodeError, ledger::Ledger, privacy::standings};

pub fn print(config: &NodeConfig, json: bool) -> Result<(), NodeError> {
    if !config.data_dir.join(crate::ledger::LEDGER_FILE).exists() {
        if json {
            println!("{}", serde_json::json!({"budgets": [], "entries": []}));
        } else {
            println!(
                "no ledger yet in {}: this node has run no query",
                config.data_dir.display()
            );
        }
        return Ok(());
    }
    let ledger = Ledger::open(&config.data_dir)?;
    let entries = ledger.entries()?;
    let budgets = standings(&entries, &config.policy);
    if json {
        println!("{}", serde_json::json!({"budgets": budgets, "entries": entries}));
        return Ok(());
    }
    println!(
        "budgets (epsilon at delta {:e}, composed under zCDP; \"left\" is the most one more query may spend)",
        config.policy.delta
    );
    println!(
        "  {:<16} {:<12} {:<20} {:>7} {:>9} {:>9} {:>9}",
        "dataset", "partner", "period", "queries", "spent", "budget", "left"
    );
    for b in &budgets {
        let (budget, left) = match (b.epsilon_budget, b.epsilon_left) {
            (Some(e), Some(left)) => (format!("{e:.3}"), format!("{left:.3}")),
            _ => ("none".into(), "-".into()),
        };
        println!(
            "  {:<16} {:<12} {:<20} {:>7} {:>9.3} {:>9} {:>9}",
            b.dataset, b.partner, b.period, b.queries, b.epsilon_spent, budget, left
        );
    }
    println!("\njobs");
    println!(
        "  {:<26} {:<10} {:<16} {:<12} {:<20} {:>8} state",
        "job", "query", "dataset", "partner", "period", "epsilon"
    );
    for e in &entries {
        let c = &e.charge;
        let epsilon = if c.exact {
            "exact".to_string()
        } else {
            format!("{}", c.epsilon)
        };
        let state = match e.state {
            crate::ledger::EntryState::Reserved => "reserved (counted as spent)",
            crate::ledger::EntryState::Started => "started (the peer-view part spent)",
            crate::ledger::EntryState::Committed => "committed",
            crate::ledger::EntryState::Partial => {
                "partial (job failed after its lists went out: that part spent)"
            }
            crate::ledger::EntryState::Released => "released (job failed, not spent)",
        };
        println!(
            "  {:<26} {:<10} {:<16} {:<12} {:<20} {:>8} {state}",
            c.job_id, c.query, c.dataset, c.partner, c.period, epsilon
        );
    }
    Ok(())
}
