//! `zarrforge inspect` and `zarrforge plan` output.

use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::mpi::topology::Topology;
use std::fmt::Write;

use crate::model::schema::{Group, Schema};
use crate::pipeline::plan::Plan;

/// Adds the source filters of netCDF-4 variables (read through HDF5).
pub fn add_filters(schema: &mut Schema) {
    if schema.format != crate::model::schema::SourceFormat::Netcdf4 {
        return;
    }
    let Ok(mut r) = crate::pipeline::read::hdf5::Hdf5Reader::open(&schema.source) else {
        return;
    };
    fn walk(g: &mut Group, r: &mut crate::pipeline::read::hdf5::Hdf5Reader) {
        for v in &mut g.vars {
            if v.dtype != crate::model::schema::DType::String {
                v.filters = r.filters(v);
            }
        }
        for c in &mut g.groups {
            walk(c, r);
        }
    }
    walk(&mut schema.root, &mut r);
}

/// Human-readable description of the source.
pub fn describe(schema: &Schema) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ({:?})", schema.source.display(), schema.format);
    describe_group(&schema.root, &mut out, 0);
    for s in &schema.skipped {
        let _ = writeln!(out, "unsupported (skipped): {} ({})", s.path, s.kind);
    }
    out
}

fn describe_group(g: &Group, out: &mut String, depth: usize) {
    let pad = "  ".repeat(depth);
    let _ = writeln!(out, "{pad}group /{}", g.path);
    for d in &g.dims {
        let unl = if d.unlimited { " (unlimited)" } else { "" };
        let _ = writeln!(out, "{pad}  dim {} = {}{unl}", d.name, d.len);
    }
    for a in &g.attrs {
        let _ = writeln!(out, "{pad}  :{} = {}", a.name, a.value.display());
    }
    for v in &g.vars {
        let dims: Vec<String> = v
            .dims
            .iter()
            .zip(&v.shape)
            .map(|(d, n)| format!("{d}={n}"))
            .collect();
        let storage = match &v.source_chunks {
            Some(c) => format!("chunks {c:?}"),
            None => "contiguous".into(),
        };
        let endian = if v.big_endian { ", big-endian" } else { "" };
        let filters = if v.filters.is_empty() {
            String::new()
        } else {
            format!(", filters {}", v.filters.join(" "))
        };
        let _ = writeln!(
            out,
            "{pad}  var {} {}({}) {storage}{endian}{filters}",
            v.name,
            v.dtype.nc_name(),
            dims.join(", ")
        );
        for a in &v.attrs {
            let _ = writeln!(
                out,
                "{pad}    {}:{} = {}",
                v.name,
                a.name,
                a.value.display()
            );
        }
    }
    for c in &g.groups {
        describe_group(c, out, depth + 1);
    }
}

/// Human-readable plan.
pub fn describe_plan(plan: &Plan, units: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} arrays, {} units, {:.3} GB uncompressed on the direct path, {} ranks, imbalance {:.3} (max/mean bytes)",
        plan.arrays.len(),
        plan.total_units,
        {
            #[allow(clippy::cast_precision_loss)]
            {
                plan.total_bytes() as f64 / 1e9
            }
        },
        plan.ranks,
        plan.imbalance()
    );
    for a in &plan.arrays {
        let shards = a
            .shards
            .as_ref()
            .map(|s| format!(" shards {s:?}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  array {} {:?} shape {:?} chunks {:?}{shards} units {}",
            a.path,
            a.dtype,
            a.shape,
            a.chunks,
            a.num_units()
        );
    }
    for r in 0..plan.ranks {
        let first = (plan.units_count(r) > 0).then(|| plan.unit(plan.bounds[r]));
        let last = (plan.units_count(r) > 0).then(|| plan.unit(plan.bounds[r + 1] - 1));
        let span = match (first, last) {
            (Some(f), Some(l)) => format!(
                "{}{:?} .. {}{:?}",
                plan.arrays[f.array].path, f.indices, plan.arrays[l.array].path, l.indices
            ),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "  rank {r}: {} units, {} bytes, {span}",
            plan.units_count(r),
            plan.rank_bytes[r]
        );
        if units {
            for u in plan.units_of(r) {
                let _ = writeln!(out, "    {} {:?}", plan.arrays[u.array].path, u.indices);
            }
        }
    }
    out
}

/// Human-readable summary of a combined dataset (for `recipe check`).
pub fn describe_job(job: &crate::commands::convert::Job, plan: &Plan) -> String {
    let ds = &job.ds;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} input file(s) scanned in {:.3} s",
        job.files, job.scan_seconds
    );
    match &ds.concat {
        Some(c) => {
            let _ = writeln!(
                out,
                "concatenated along '{}': {} steps{}{}",
                c.dim,
                c.len,
                c.time_units
                    .as_ref()
                    .map(|u| format!(", units '{u}'"))
                    .unwrap_or_default(),
                c.calendar
                    .as_ref()
                    .map(|u| format!(", calendar '{u}'"))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(out, "no concatenation dimension");
        }
    }
    if let Some(g) = &ds.grid {
        describe_grid(&mut out, ds, g);
    }
    for (v, s) in ds.schema.vars().iter().zip(&ds.sources) {
        let from = if s.var.path == v.path {
            String::new()
        } else {
            format!(" (from '{}')", s.var.path)
        };
        let all: Vec<&crate::pipeline::combine::Segment> = match &s.stack {
            Some(st) => st.members.iter().flatten().collect(),
            None => s.segments.iter().collect(),
        };
        let recoded = all.iter().filter(|g| g.recode.is_some()).count();
        let _ = writeln!(
            out,
            "  {} {} {:?} {:?}{from}: {}{}",
            v.path,
            v.dtype.nc_name(),
            v.dims,
            v.shape,
            match (&s.inline, &s.stack) {
                (Some(_), _) => "values from the files' grid".to_string(),
                (None, Some(_)) => format!("{} file(s), stacked by member", all.len()),
                (None, None) => format!("{} file(s)", all.len()),
            },
            if recoded > 0 {
                format!(", time re-encoded in {recoded}")
            } else {
                String::new()
            }
        );
    }
    out.push_str(&describe_plan(plan, false));
    out
}

/// The grid of an ensemble: each value of the new dimension with its
/// files, steps and missing cells.
fn describe_grid(
    out: &mut String,
    ds: &crate::pipeline::combine::Dataset,
    g: &crate::pipeline::combine::grid::Grid,
) {
    let steps = ds.concat.as_ref().map(|c| (c.dim.clone(), c.len));
    let _ = writeln!(
        out,
        "grid: '{}' ({} values){}",
        g.dim,
        g.labels.len(),
        steps
            .as_ref()
            .map(|(d, n)| format!(" x '{d}' ({n} steps)"))
            .unwrap_or_default()
    );
    // The members' files: those of the first stacked variable.
    let stack = ds.sources.iter().find_map(|s| s.stack.as_ref());
    let width = g
        .labels
        .iter()
        .map(|l| l.to_string().len())
        .max()
        .unwrap_or(0)
        .max(g.dim.len());
    let _ = writeln!(out, "  {:<width$}  files  steps  missing", g.dim);
    for (m, label) in g.labels.iter().enumerate() {
        let segs = stack
            .and_then(|st| st.members.get(m))
            .map_or(&[][..], Vec::as_slice);
        let files = segs.len();
        let held: u64 = if steps.is_some() {
            segs.iter().map(|s| s.len).sum()
        } else {
            u64::from(files > 0)
        };
        let missing: Vec<String> = g
            .missing
            .iter()
            .filter(|c| c.index == m as u64)
            .map(|c| match &steps {
                Some((d, _)) => format!("{d} {}..{} ({} steps)", c.start, c.start + c.len, c.len),
                None => "all".to_string(),
            })
            .collect();
        let _ = writeln!(
            out,
            "  {:<width$}  {files:>5}  {held:>5}  {}",
            label.to_string(),
            if missing.is_empty() {
                "-".to_string()
            } else {
                missing.join(", ")
            }
        );
    }
}

/// `zarrforge inspect`: one file's structure, or a store's state
/// ([`super::inspect_store`]), read by rank 0.
///
/// # Errors
/// The file's structure cannot be read.
pub fn command(ctx: &MpiCtx, args: &crate::cli::args::InspectArgs) -> Result<(), Error> {
    if !ctx.is_root() {
        return Ok(());
    }
    #[cfg(feature = "icechunk")]
    if args.icechunk {
        crate::store::storage::icechunk::register(
            &args.input,
            crate::store::storage::icechunk::Target {
                branch: "main".into(),
                reference: args.reference.clone(),
            },
        )?
        .open_readonly()?;
    }
    if super::inspect_store::is_store(&args.input) {
        let v = super::inspect_store::view(&args.input)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        } else {
            print!("{}", super::inspect_store::describe(&v));
        }
        return Ok(());
    }
    let mut s = crate::pipeline::scan::structure::read_schema(&args.input, true)?;
    add_filters(&mut s);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
    } else {
        print!("{}", describe(&s));
    }
    Ok(())
}

/// `zarrforge plan`: the job and its plan; nothing is written. The plan is
/// for the ranks of this launch, whose topology it shows, or for `--ranks
/// N` of another launch, whose layout is what the flags say of it (this
/// launch's topology is then shown apart, as the planning launch's).
///
/// # Errors
/// The job's or the plan's error.
pub fn plan_command(ctx: &MpiCtx, args: &crate::cli::args::PlanArgs) -> Result<(), Error> {
    let cfg = args.to_config()?;
    let job = crate::commands::convert::prepare_job(
        ctx,
        &cfg,
        &mut crate::commands::convert::Monitor::silent(ctx),
    )?;
    let ranks = args.ranks.unwrap_or(ctx.size());
    let p = Plan::new(&job.ds, &cfg, ranks)?;
    // Where this launch's ranks and threads run.
    let topo = Topology::detect();
    let threads = cfg
        .threads
        .unwrap_or_else(|| topo.encoder_threads(ctx.ranks_on_node()))
        .max(1);
    let topology = ctx.job_topology(&topo, threads, topo.is_bound());
    if !ctx.is_root() {
        return Ok(());
    }
    let planned = planned_job(args, cfg.threads, &topo, ctx.ranks_on_node());
    let threads = planned.as_ref().map_or(threads, |j| j.threads_per_rank);
    let (p, x) = crate::commands::convert::paths(&cfg, &job, p, ranks, threads, &[])?;
    let traffic = x.traffic(&p, |_| false);
    let icechunk = args.icechunk.then(|| icechunk_plan(&job, &p));
    let peaks = (0..ranks)
        .map(|r| {
            let overlap = x.sizing.overlap;
            crate::commands::convert::peak_memory(&cfg, &p, threads, &traffic, overlap, r)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if args.json {
        let mut v = serde_json::to_value(&p).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            // The planned job: another launch's layout, or this launch.
            m.insert(
                "planned_job".into(),
                planned.as_ref().map_or_else(
                    || serde_json::json!("this launch"),
                    |j| serde_json::to_value(j).unwrap_or_default(),
                ),
            );
            if let Some(ic) = &icechunk {
                m.insert("icechunk".into(), ic.clone());
            }
            m.insert(
                "planning_launch".into(),
                serde_json::to_value(&topology).unwrap_or_default(),
            );
            m.insert(
                "exchange".into(),
                serde_json::json!({
                    "routes": x.routes,
                    "rounds": x.rounds.len(),
                    "sizing": x.sizing,
                    "traffic": traffic,
                    "peak_memory": peaks.iter().map(|(d, e)| (*d).max(*e)).collect::<Vec<_>>(),
                }),
            );
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        match &planned {
            Some(j) => {
                println!("planned job: {}", j.line());
                println!("planning launch (not the planned job): {}", topology.line());
            }
            None => println!("planned job (this launch): {}", topology.line()),
        }
        print!("{}", describe_plan(&p, args.units));
        if let Some(ic) = &icechunk {
            println!(
                "icechunk: {} chunk reference(s) in {} commit(s), {} manifest(s) ({} chunks per manifest along '{}'); at most {} references per commit",
                ic["chunk_refs"], ic["commits"], ic["manifests"], ic["split_chunks"],
                ic["split_dim"].as_str().unwrap_or("-"), ic["max_refs_per_commit"]
            );
        }
        print!("{}", describe_exchange(&p, &x, &traffic, &peaks));
    }
    Ok(())
}

/// What an Icechunk commit of the plan holds (`plan --icechunk`).
fn icechunk_plan(job: &crate::commands::convert::Job, p: &Plan) -> serde_json::Value {
    use crate::store::layout::{icechunk_counts, ICECHUNK_MAX_REFS, ICECHUNK_SPLIT_CHUNKS};
    let vars = job.ds.schema.vars();
    let arrays: Vec<(Vec<String>, Vec<u64>, Vec<u64>)> = p
        .arrays
        .iter()
        .map(|a| {
            let dims = vars.get(a.var).map(|v| v.dims.clone()).unwrap_or_default();
            (
                dims,
                a.shape.clone(),
                a.shards.clone().unwrap_or_else(|| a.chunks.clone()),
            )
        })
        .collect();
    let split = job.ds.concat.as_ref().map(|c| c.dim.clone());
    let (refs, manifests) = icechunk_counts(&arrays, split.as_deref());
    serde_json::json!({
        "chunk_refs": refs,
        "commits": 1,
        "manifests": manifests,
        "split_dim": split,
        "split_chunks": ICECHUNK_SPLIT_CHUNKS,
        "max_refs_per_commit": ICECHUNK_MAX_REFS,
        "fits": refs <= ICECHUNK_MAX_REFS,
    })
}

/// The job `--ranks N` plans for, when it is not this launch: its threads
/// as `--threads` sets them, or as this node would share its PUs among
/// `--ranks-per-node` ranks (among this launch's `on_node` ranks without it).
fn planned_job(
    args: &crate::cli::args::PlanArgs,
    threads: Option<usize>,
    topo: &Topology,
    on_node: usize,
) -> Option<crate::mpi::topology::PlannedJob> {
    let n = args.ranks?;
    let (t, from) = match (threads, args.ranks_per_node) {
        (Some(t), _) => (t, "--threads".to_string()),
        (None, Some(k)) => (
            topo.encoder_threads(k.min(n.max(1))),
            format!(
                "this node's {} PU(s) shared by {k} rank(s); --threads sets it",
                topo.node_pus
            ),
        ),
        (None, None) => (
            topo.encoder_threads(on_node),
            format!(
                "this node's {} PU(s) shared by this launch's {on_node} rank(s) on it; --threads or --ranks-per-node sets it",
                topo.node_pus
            ),
        ),
    };
    Some(crate::mpi::topology::PlannedJob::new(
        n,
        args.ranks_per_node,
        t.max(1),
        from,
    ))
}

/// The paths of a plan, and on the exchange path what every rank decodes,
/// sends, receives and holds.
pub fn describe_exchange(
    plan: &Plan,
    x: &crate::pipeline::exchange::Exchange,
    t: &crate::pipeline::exchange::Traffic,
    peaks: &[(u64, u64)],
) -> String {
    use crate::pipeline::exchange::{imbalance, Path};
    #[allow(clippy::cast_precision_loss)]
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let mut out = String::new();
    for (a, r) in plan.arrays.iter().zip(&x.routes) {
        let why = if r.path == Path::Exchange {
            format!("exchange, blocks {:?}", r.block)
        } else if r.cached && r.amplification > 1.0 {
            "direct (the decoded-chunk cache serves neighbouring units)".to_string()
        } else {
            "direct".to_string()
        };
        let _ = writeln!(
            out,
            "  path {}: {why}; the direct path decodes {:.1}x the source",
            a.path, r.amplification
        );
    }
    if !x.any() {
        return out;
    }
    let _ = writeln!(
        out,
        "exchange: {} round(s){}, {} step(s), {} pass(es) over the source, {} messages with data; rounds of {:.0} MiB and steps of {:.0} MiB per rank; imbalance decode {:.3} write {:.3}",
        t.rounds,
        if x.sizing.overlap {
            " (each assembled while the one before is encoded)"
        } else {
            ""
        },
        t.steps,
        t.passes,
        t.messages,
        mib(x.sizing.round_bytes),
        mib(x.sizing.step_bytes),
        imbalance(&t.decoded),
        imbalance(&t.written)
    );
    for r in 0..x.ranks {
        let (direct, exchange) = peaks.get(r).copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "  rank {r}: decodes {:.1} MiB, sends {:.1} MiB, receives {:.1} MiB, writes {:.1} MiB; peak memory {:.0} MiB (direct path {:.0} MiB, exchange {:.0} MiB)",
            mib(t.decoded[r]),
            mib(t.sent[r]),
            mib(t.received[r]),
            mib(t.written[r]),
            mib(direct.max(exchange)),
            mib(direct),
            mib(exchange)
        );
    }
    out
}

/// `zarrforge recipe check`: the recipe parsed, its inputs scanned and
/// combined, the plan made; nothing is written.
///
/// # Errors
/// The recipe's, the job's or the plan's error.
pub fn recipe_check(ctx: &MpiCtx, a: &crate::cli::args::RecipeCheckArgs) -> Result<(), Error> {
    let recipe = crate::cli::recipe::Recipe::load(&a.recipe)?;
    let mut cfg = crate::cli::config::ConvertConfig::new(Vec::new(), std::path::PathBuf::default());
    recipe.apply(&a.recipe, &mut cfg)?;
    cfg.validate()?;
    let job = crate::commands::convert::prepare_job(
        ctx,
        &cfg,
        &mut crate::commands::convert::Monitor::silent(ctx),
    )?;
    let p = Plan::new(&job.ds, &cfg, ctx.size())?;
    if ctx.is_root() {
        print!("{}", describe_job(&job, &p));
        println!("{}: ok", a.recipe.display());
    }
    Ok(())
}
