//! `callhome-receiver fleet`: the fleet view from the index (a table, or `--json` in the shape
//! the operator API answers), `fleet seed` to add synthetic installs in bulk, and `fleet explain`
//! to show the plan of the list query.

use callhome_protocol::time::{now, rfc3339};
use callhome_receiver::fleet::dto::InstallEntry;
use callhome_receiver::fleet::{ClockRange, State};

use crate::cli::{FleetArgs, FleetCommand, IndexArgs};
use crate::{Result, currency, open_existing_index, open_index, runtime, thresholds};

pub fn run(args: FleetArgs, command: Option<FleetCommand>) -> Result<()> {
    let rt = runtime()?;
    match command {
        Some(FleetCommand::Seed { customer, installs, spread_days, index }) => {
            let index = open_index(&rt, &index)?;
            let added = rt.block_on(index.seed(&customer, installs, spread_days, now())).map_err(|e| e.to_string())?;
            println!("{added} installs of {customer:?} added");
            Ok(())
        }
        Some(FleetCommand::Explain { state, index }) => {
            let state: State = state.parse()?;
            let index = open_existing_index(&rt, &index)?;
            let range = callhome_receiver::fleet::Thresholds::default().range(state, now());
            println!("{}", rt.block_on(index.explain_installs(range)).map_err(|e| e.to_string())?);
            Ok(())
        }
        None => list(&rt, args),
    }
}

fn list(rt: &tokio::runtime::Runtime, args: FleetArgs) -> Result<()> {
    let store = match (&args.store, &args.index) {
        (Some(s), _) => s.clone(),
        (None, Some(_)) => callhome_receiver::StoreSpec::Local(std::path::PathBuf::new()),
        (None, None) => return Err("give the receiver's --store (or its --index)".into()),
    };
    let index = open_existing_index(rt, &IndexArgs { store, index: args.index.clone() })?;
    let t = thresholds(&args.thresholds)?;
    let c = currency(&args.releases)?;
    let now = now();
    let state = match (&args.state, args.overdue) {
        (_, true) => Some(State::Overdue),
        (Some(s), false) => Some(s.parse::<State>().map_err(|e| format!("--state: {e}"))?),
        (None, false) => None,
    };
    let range = state.map_or(ClockRange::ALL, |s| t.range(s, now));
    let installs = rt.block_on(index.installs(range)).map_err(|e| e.to_string())?;
    let entries: Vec<InstallEntry> = installs.iter().map(|i| InstallEntry::new(i, &t, &c, now)).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries).map_err(|e| e.to_string())?);
        return Ok(());
    }
    if entries.is_empty() {
        println!("no installs{}", state.map(|s| format!(" in state {}", s.name())).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{:<36}  {:<20}  {:<20}  {:>5}  {:<8}  {:<10}  {:<10}  OUTDATED",
        "INSTALL", "CUSTOMER", "LAST SUCCESS", "DAYS", "STATE", "AGENT", "PRODUCT"
    );
    let none = || "-".to_string();
    for (e, i) in entries.iter().zip(&installs) {
        println!(
            "{:<36}  {:<20}  {:<20}  {:>5}  {:<8}  {:<10}  {:<10}  {}",
            e.install_id,
            e.customer.clone().unwrap_or_else(none),
            i.last_success.map(rfc3339).unwrap_or_else(|| "never".into()),
            e.days_since,
            e.state,
            e.agent_version.clone().unwrap_or_else(none),
            e.product_version.clone().unwrap_or_else(none),
            if e.outdated { "yes" } else { "no" }
        );
    }
    Ok(())
}
