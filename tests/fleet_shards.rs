//! Sharding a fleet: `--shard I/N` partitions the computers exactly and stably, and
//! `cimrun merge` joins the shards' outputs into what one run would have written.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use cimrun::plan::{self, Selection, Shard};

fn job_with_range(dir: &Path, last: usize) -> cimrun::job::LoadedJob {
    let path = dir.join("fleet.yaml");
    let text = format!(
        "version: 1\nsessions:\n  - name: fleet\n    computers: [\"host[00001:{last:05}].corp.example\"]\n\
         queries:\n  - name: os\n    class: Win32_OperatingSystem\n"
    );
    std::fs::write(&path, text).unwrap();
    cimrun::job::load(&path, &[]).unwrap_or_else(|d| panic!("{d}"))
}

fn shard_plan(job: &cimrun::job::LoadedJob, shard: Shard) -> Vec<String> {
    let selection = Selection { shard: Some(shard), ..Selection::default() };
    plan::build(job, &selection).unwrap().hosts.iter().map(|h| h.computer.to_string()).collect()
}

#[test]
fn shards_partition_ten_thousand_hosts_and_stay_stable_as_the_fleet_grows() {
    let dir = tempfile::tempdir().unwrap();
    let job = job_with_range(dir.path(), 10_000);
    let grown = job_with_range(dir.path(), 12_500);
    for count in [2u32, 3, 8, 25] {
        let mut owner: HashMap<String, u32> = HashMap::new();
        for index in 0..count {
            for name in shard_plan(&job, Shard { index, count }) {
                assert!(owner.insert(name.clone(), index).is_none(), "{name} is in two shards of {count}");
            }
        }
        assert_eq!(owner.len(), 10_000, "{count} shards lost hosts");
        let sizes: Vec<usize> = (0..count).map(|i| owner.values().filter(|&&o| o == i).count()).collect();
        let mean = 10_000 / count as usize;
        assert!(sizes.iter().all(|&s| s > mean * 8 / 10 && s < mean * 12 / 10), "{count} shards: {sizes:?}");

        // With 2,500 more hosts, every existing host stays in its shard.
        let mut seen = 0;
        for index in 0..count {
            for name in shard_plan(&grown, Shard { index, count }) {
                if let Some(&before) = owner.get(&name) {
                    assert_eq!(before, index, "{name} moved when the fleet grew");
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, 10_000);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn record(computer: &str, status: &str, rows: u64) -> String {
    let category = if status == "failed" { r#","category":"unreachable""# } else { "" };
    format!(
        r#"{{"session":"s","computer":"{computer}","query":"os","class":"Win32_OperatingSystem","namespace":"root/cimv2","status":"{status}"{category},"rows":{rows},"attempts":1,"protocol":"wsman","started":"2026-11-21T05:00:00.000Z","duration_ms":5}}"#
    )
}

fn report(id: &str, hosts: usize, tasks: &[String], exit_code: i32) -> String {
    format!(
        "{{\"cimrun\":\"0.1.0\",\"run_id\":\"{id}\",\"job\":\"fleet.yaml\",\"started\":\"2026-11-21T05:0{}:00.000Z\",\n\"tasks\": [\n  {}\n],\n\"summary\": {{\"hosts\":{hosts},\"tasks\":0,\"ok\":0,\"failed\":0,\"cancelled\":0,\"rows\":0,\"by_category\":{{}},\"failed_hosts\":0}},\n\"finished\": \"2026-11-21T06:00:0{}.000Z\",\n\"exit_code\": {exit_code}\n}}\n",
        id.len() % 10,
        tasks.join(",\n  "),
        id.len() % 10
    )
}

#[test]
fn merge_joins_outputs_and_recomputes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, out) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("merged"));
    write(&a.join("os.csv"), "PSComputerName,Caption\r\nweb01,\"Windows, Server\"\r\n");
    write(&b.join("os.csv"), "PSComputerName,Caption\r\nweb02,Windows\r\nweb03,\"multi\r\nline\"\r\n");
    write(&a.join("os.ndjson"), "{\"PSComputerName\":\"web01\"}\n");
    write(&b.join("os.ndjson"), "{\"PSComputerName\":\"web02\"}\n{\"PSComputerName\":\"web03\"}");
    write(&a.join("os.json"), "[\n{\"PSComputerName\":\"web01\",\"A\":[1,2]}\n]\n");
    write(&b.join("os.json"), "[]\n");
    write(&dir.path().join("c/os.json"), "[\n{\"PSComputerName\":\"web02\"},\n{\"PSComputerName\":\"web03\"}\n]\n");
    write(&a.join("by-host/web01.csv"), "PSComputerName\r\nweb01\r\n");
    write(&a.join(".os.csv.tmp-x"), "half a file");
    write(&a.join("run.json"), &report("r-a", 1, &[record("web01", "ok", 1)], 0));
    write(&b.join("run.json"), &report("r-bb", 2, &[record("web02", "ok", 2), record("web03", "failed", 0)], 1));

    let c = dir.path().join("c");
    let outcome = cimrun::merge::merge(&[a.clone(), b.clone(), c], &out).unwrap();
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(
        read("os.csv"),
        "PSComputerName,Caption\r\nweb01,\"Windows, Server\"\r\nweb02,Windows\r\nweb03,\"multi\r\nline\"\r\n"
    );
    assert_eq!(read("os.ndjson").lines().count(), 3);
    let json: serde_json::Value = serde_json::from_str(&read("os.json")).unwrap();
    let names: Vec<&str> = json.as_array().unwrap().iter().map(|o| o["PSComputerName"].as_str().unwrap()).collect();
    assert_eq!(names, ["web01", "web02", "web03"]);
    assert_eq!(json[0]["A"], serde_json::json!([1, 2]));
    assert_eq!(read("by-host/web01.csv"), "PSComputerName\r\nweb01\r\n");
    assert!(!out.join(".os.csv.tmp-x").exists());

    let (tasks, summary) = cimrun::report::read(&out.join("run.json")).unwrap();
    assert_eq!(tasks.len(), 3);
    assert_eq!((summary.hosts, summary.tasks, summary.ok, summary.failed, summary.rows), (3, 3, 2, 1, 3));
    assert_eq!(summary.by_category.get("unreachable"), Some(&1));
    assert_eq!(summary.failed_hosts, 1);
    assert_eq!(outcome.exit_code, 1);
    let files: BTreeSet<String> = outcome.files.iter().map(|p| p.display().to_string()).collect();
    assert!(files.contains("run.json") && files.contains("by-host/web01.csv"), "{files:?}");

    // Shards whose CSV columns differ cannot be joined into one table.
    write(&b.join("os.csv"), "PSComputerName,Version\r\nweb02,10\r\n");
    let err = cimrun::merge::merge(&[a, b], &dir.path().join("again")).unwrap_err();
    assert!(err.to_string().contains("CSV header differs"), "{err}");
}
