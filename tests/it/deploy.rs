//! The Kubernetes manifests of deploy/kubernetes: they validate against the Kubernetes schemas
//! (kubernetes-validate, strict), they agree with each other (names, volume, env, shard count,
//! failure policies), and their own commands, run as local processes the way the pods would run
//! them (the plan Job, the holder, the Indexed Job's N shards at once with JOB_COMPLETION_INDEX,
//! the merge Job's shell), give the report and exit status of a single `pgsalvage verify`.
//!
//! The manifests are read with PyYAML and checked with kubernetes-validate, both from the
//! interpreter `scripts/setup.sh` `ensure_python_readers` exports as PGSALVAGE_PYTHON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{pair, pgsalvage, psql, text, url, wait_until};

/// The Kubernetes release the manifests are checked against: the first with
/// `backoffLimitPerIndex` GA (and `podFailurePolicy`, GA since 1.31).
const KUBERNETES_VERSION: &str = "1.33";

/// The files of deploy/kubernetes, in the order they are applied.
const FILES: [&str; 7] = [
    "secret.yaml",
    "configmap.yaml",
    "pvc.yaml",
    "plan-job.yaml",
    "hold-pod.yaml",
    "shards-job.yaml",
    "merge-job.yaml",
];

/// One table large enough to be cut into ranges for every shard, one small one; damage of
/// several kinds in both.
const SCHEMA: &str = "
CREATE TABLE big (id bigint PRIMARY KEY, a int, b text);
INSERT INTO big SELECT g, g % 97, md5(g::text) FROM generate_series(1, 30000) g;
CREATE TABLE names (name text PRIMARY KEY, v int);
INSERT INTO names SELECT 'n' || g, g FROM generate_series(1, 400) g;
ANALYZE;
";

const DAMAGE: &str = "
DELETE FROM big WHERE id % 1009 = 0;
UPDATE big SET b = NULL WHERE id % 1013 = 0;
UPDATE big SET a = -a WHERE id % 2003 = 0;
INSERT INTO big VALUES (50001, 1, 'x'), (-5, 2, 'y');
DELETE FROM names WHERE v % 101 = 0;
UPDATE names SET v = -v WHERE v % 67 = 0;
";

fn python() -> String {
    std::env::var("PGSALVAGE_PYTHON").unwrap_or_else(|_| {
        panic!(
            "PGSALVAGE_PYTHON is not set: it names the python with PyYAML and kubernetes-validate \
             these tests need. Run them through scripts/test.sh, or `source scripts/setup.sh && \
             ensure_python_readers` first (it installs them in a virtualenv and exports it)"
        )
    })
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every `*.yaml` of deploy/kubernetes; exactly the files of [`FILES`].
fn manifest_files() -> Vec<PathBuf> {
    let dir = deploy_dir();
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    found.sort();
    let mut expected: Vec<String> = FILES.iter().map(|f| f.to_string()).collect();
    expected.sort();
    assert_eq!(found, expected, "the manifests in {}", dir.display());
    FILES.iter().map(|f| dir.join(f)).collect()
}

/// The documents of a YAML file, as PyYAML's safe loader reads them.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let run = Command::new(python())
        .args([
            "-c",
            "import sys, yaml, json; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python()));
    assert!(
        run.status.success(),
        "PyYAML could not read {}: {}",
        path.display(),
        text(&run.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&run.stdout).expect("JSON from PyYAML");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Every object of every manifest.
fn manifests() -> Vec<Value> {
    manifest_files()
        .iter()
        .flat_map(|f| {
            let docs = yaml_documents(f);
            assert_eq!(docs.len(), 1, "{}: one object per file", f.display());
            docs
        })
        .collect()
}

fn object<'a>(all: &'a [Value], kind: &str, name: &str) -> &'a Value {
    all.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
}

/// The pod spec of a Job's template or of a Pod.
fn pod_spec(object: &Value) -> &Value {
    match object["kind"].as_str() {
        Some("Job") => &object["spec"]["template"]["spec"],
        Some("Pod") => &object["spec"],
        other => panic!("{other:?} has no pod spec"),
    }
}

fn container<'a>(spec: &'a Value, name: &str) -> &'a Value {
    spec["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {spec}"))
}

/// What `kubernetes-validate` said, and its exit status.
struct Validated {
    code: Option<i32>,
    out: String,
}

impl Validated {
    fn passed(&self, resource: &str) -> bool {
        self.out.lines().any(|l| {
            l.starts_with("INFO ")
                && l.contains(&format!("passed for resource {resource} against version"))
        })
    }

    fn rejected(&self, mentioning: &str) -> bool {
        self.code.is_some_and(|c| c != 0)
            && self
                .out
                .lines()
                .any(|l| l.starts_with("ERROR ") && l.contains(mentioning))
    }
}

fn kubernetes_validate(flags: &[&str], files: &[PathBuf]) -> Validated {
    let run = Command::new(python())
        .args(["-m", "kubernetes_validate"])
        .args(flags)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("run {} -m kubernetes_validate: {e}", python()));
    Validated {
        code: run.status.code(),
        out: format!("{}{}", text(&run.stdout), text(&run.stderr)),
    }
}

/// `kind/name` as kubernetes-validate names a resource.
fn resource(object: &Value) -> String {
    format!(
        "{}/{}",
        str_of(&object["kind"], "kind").to_lowercase(),
        str_of(&object["metadata"]["name"], "metadata.name")
    )
}

/// A copy of the manifest `file` with `from` replaced by `to`, written into `dir`.
fn broken_copy(dir: &Path, file: &str, from: &str, to: &str) -> PathBuf {
    let original = std::fs::read_to_string(deploy_dir().join(file)).unwrap();
    assert_eq!(
        original.matches(from).count(),
        1,
        "{file} has `{from}` once, to break"
    );
    let tag: String = to.chars().filter(char::is_ascii_alphanumeric).collect();
    let path = dir.join(format!("broken-{tag}-{file}"));
    std::fs::write(&path, original.replace(from, to)).unwrap();
    path
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let files = manifest_files();
    let strict = ["--strict", "--kubernetes-version", KUBERNETES_VERSION];
    let all = kubernetes_validate(&strict, &files);
    assert_eq!(all.code, Some(0), "{}", all.out);
    // A kind it has no schema for is only a warning with exit 0: every object must have passed.
    assert!(
        !all.out
            .lines()
            .any(|l| ["WARN", "ERROR", "FATAL"].iter().any(|w| l.starts_with(w))),
        "{}",
        all.out
    );
    let objects = manifests();
    for o in &objects {
        assert!(
            all.passed(&resource(o)),
            "{} not validated: {}",
            resource(o),
            all.out
        );
    }
    assert!(
        all.out
            .contains(&format!("against version {KUBERNETES_VERSION}")),
        "{}",
        all.out
    );
    assert_eq!(
        all.out.lines().filter(|l| l.contains(" passed ")).count(),
        objects.len()
    );

    // The validator really checks: broken copies are refused.
    let dir = tempfile::tempdir().unwrap();
    let misspelled = broken_copy(
        dir.path(),
        "shards-job.yaml",
        "backoffLimitPerIndex: 3",
        "backoffLimitPerIndx: 3",
    );
    let got = kubernetes_validate(&strict, std::slice::from_ref(&misspelled));
    assert!(got.rejected("backoffLimitPerIndx"), "{}", got.out);
    // ... by --strict: without it an unknown field passes.
    let lax = kubernetes_validate(
        &["--kubernetes-version", KUBERNETES_VERSION],
        std::slice::from_ref(&misspelled),
    );
    assert_eq!(lax.code, Some(0), "{}", lax.out);

    let not_a_number = broken_copy(
        dir.path(),
        "shards-job.yaml",
        "completions: 8",
        "completions: eight",
    );
    let got = kubernetes_validate(&strict, &[not_a_number]);
    assert!(got.rejected("completions"), "{}", got.out);

    let wrong_place = broken_copy(
        dir.path(),
        "shards-job.yaml",
        "      restartPolicy: Never",
        "      restartPolicy: Never\n      completionMode: Indexed",
    );
    let got = kubernetes_validate(&strict, &[wrong_place]);
    assert!(got.rejected("completionMode"), "{}", got.out);

    let unknown_kind = broken_copy(dir.path(), "plan-job.yaml", "kind: Job", "kind: Jobb");
    let got = kubernetes_validate(&strict, &[unknown_kind]);
    assert!(!got.passed("jobb/pgsalvage-plan"), "{}", got.out);

    // ... and by the version: the Job API of Kubernetes 1.27 (no backoffLimitPerIndex yet, and
    // onPodConditions required in every podFailurePolicy rule) refuses the shards Job.
    let old = kubernetes_validate(
        &["--strict", "--kubernetes-version", "1.27"],
        &[deploy_dir().join("shards-job.yaml")],
    );
    assert!(old.rejected("against version 1.27"), "{}", old.out);
}

/// The user part of a `postgresql://` URL has no password, nor its query.
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let user = authority.rsplit_once('@').map_or("", |(u, _)| u);
    user.contains(':') || url.contains("password=")
}

#[test]
fn the_manifests_agree_on_names_volume_env_and_shard_count() {
    for f in manifest_files() {
        let body = std::fs::read_to_string(&f).unwrap();
        assert!(
            body.starts_with("# pgsalvage on Kubernetes, step "),
            "{} starts with a comment saying what it does and when",
            f.display()
        );
    }
    let all = manifests();
    for o in &all {
        let name = str_of(&o["metadata"]["name"], "metadata.name");
        assert!(name.starts_with("pgsalvage-"), "{name}");
    }
    let secret = object(&all, "Secret", "pgsalvage-db");
    assert_eq!(secret["type"], "Opaque");
    let password = str_of(&secret["stringData"]["PGPASSWORD"], "PGPASSWORD");
    assert!(
        password.contains("CHANGE-ME"),
        "a marked placeholder: {password}"
    );

    let config = object(&all, "ConfigMap", "pgsalvage-config");
    for key in ["PGSALVAGE_BASE", "PGSALVAGE_TARGET"] {
        let u = str_of(&config["data"][key], key);
        assert!(u.starts_with("postgresql://"), "{key}: {u}");
        assert!(!has_password(u), "{key} carries a password: {u}");
    }
    assert!(has_password("postgresql://u:secret@h/db") && !has_password("postgresql://u@h/db"));
    let shards: u64 = str_of(&config["data"]["SHARDS"], "SHARDS")
        .parse()
        .expect("SHARDS");

    let pvc = object(&all, "PersistentVolumeClaim", "pgsalvage-work");
    assert!(
        pvc["spec"]["accessModes"]
            .as_array()
            .unwrap()
            .contains(&"ReadWriteMany".into()),
        "{pvc}"
    );

    let image = str_of(
        &container(
            pod_spec(object(&all, "Job", "pgsalvage-shards")),
            "pgsalvage",
        )["image"],
        "image",
    );
    let pods = [
        "pgsalvage-plan",
        "pgsalvage-hold",
        "pgsalvage-shards",
        "pgsalvage-merge",
    ];
    for name in pods {
        let kind = if name == "pgsalvage-hold" {
            "Pod"
        } else {
            "Job"
        };
        let o = object(&all, kind, name);
        let spec = pod_spec(o);
        let c = container(spec, "pgsalvage");
        assert_eq!(c["image"], image, "{name}: one image");
        assert_eq!(spec["restartPolicy"], "Never", "{name}");
        // The volume: the PVC at /work.
        let volume = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["persistentVolumeClaim"]["claimName"] == "pgsalvage-work")
            .unwrap_or_else(|| panic!("{name} mounts no pgsalvage-work"));
        let mounts = c["volumeMounts"].as_array().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m["name"] == volume["name"] && m["mountPath"] == "/work"),
            "{name}: {mounts:?}"
        );
        // The env of plan, hold and shards: the ConfigMap and the Secret's password.
        if name != "pgsalvage-merge" {
            assert_eq!(
                c["envFrom"],
                serde_json::json!([{"configMapRef": {"name": "pgsalvage-config"}}]),
                "{name}"
            );
            let pg = c["env"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "PGPASSWORD")
                .unwrap_or_else(|| panic!("{name} has no PGPASSWORD"));
            assert_eq!(
                pg["valueFrom"]["secretKeyRef"],
                serde_json::json!({"name": "pgsalvage-db", "key": "PGPASSWORD"}),
                "{name}"
            );
        }
        for rule in o["spec"]["podFailurePolicy"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(named) = rule["onExitCodes"]["containerName"].as_str() {
                container(spec, named);
            }
        }
    }

    let job = object(&all, "Job", "pgsalvage-shards");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], shards, "completions == SHARDS");
    assert_eq!(spec["parallelism"], shards, "parallelism == SHARDS");
    assert_eq!(spec["backoffLimitPerIndex"], 3);
    assert!(spec["maxFailedIndexes"].as_u64().expect("maxFailedIndexes") <= 1);
    assert_eq!(
        spec["podFailurePolicy"]["rules"],
        serde_json::json!([
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "Count", "onExitCodes": {"containerName": "pgsalvage", "operator": "In", "values": [2]}},
        ])
    );
    let c = container(pod_spec(job), "pgsalvage");
    assert_eq!(c["command"], serde_json::json!(["pgsalvage"]));
    assert_eq!(
        c["args"],
        serde_json::json!([
            "verify",
            "--plan",
            "/work/plan",
            "--shard",
            "auto",
            "--shard-out",
            "/work/shards",
            "-q"
        ])
    );
    for key in ["requests", "limits"] {
        assert!(c["resources"][key]["memory"].is_string(), "{key}: {c}");
    }
}

/// `$(VAR)` references in a command or argument, expanded as Kubernetes expands them: a
/// defined variable is replaced, an undefined reference stays as written, `$$` is `$`.
fn expand(input: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match env.get(name) {
                        Some(value) => out.push_str(value),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn references_expand_as_kubernetes_expands_them() {
    let env: BTreeMap<String, String> = [("N".to_string(), "8".to_string())].into();
    assert_eq!(expand("--shards=$(N)", &env), "--shards=8");
    assert_eq!(
        expand("$(N)$(N) $(M) $$(N) $x $( $", &env),
        "88 $(M) $(N) $x $( $"
    );
}

/// The container `pgsalvage` of a pod, as the kubelet would start it on the local machine:
/// its environment (envFrom first, then env, resolved from the ConfigMap and Secret objects in
/// `objects`, plus what Kubernetes adds), its command and args with `$(VAR)` expanded, and the
/// mount path of the work volume replaced by a local directory.
struct Local {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    probe: Option<Vec<String>>,
}

fn local(objects: &[Value], pod: &Value, volume: &Path, added: &[(&str, String)]) -> Local {
    let spec = pod_spec(pod);
    let c = container(spec, "pgsalvage");
    let mut env = BTreeMap::new();
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let name = str_of(&from["configMapRef"]["name"], "envFrom configMapRef");
        let data = object(objects, "ConfigMap", name)["data"]
            .as_object()
            .expect("ConfigMap data");
        for (k, v) in data {
            env.insert(k.clone(), str_of(v, k).to_string());
        }
    }
    for (k, v) in added {
        env.insert(k.to_string(), v.clone());
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = str_of(&e["name"], "env name").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if e["valueFrom"]["secretKeyRef"].is_object() {
            let r = &e["valueFrom"]["secretKeyRef"];
            let secret = object(objects, "Secret", str_of(&r["name"], "secret name"));
            str_of(
                &secret["stringData"][str_of(&r["key"], "key")],
                "secret value",
            )
            .to_string()
        } else {
            panic!("an env entry the test cannot resolve: {e}")
        };
        env.insert(name, expand(&value, &env));
    }
    let claim = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["persistentVolumeClaim"]["claimName"] == "pgsalvage-work")
        .expect("the work volume");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == claim["name"])
        .expect("the work volume's mount");
    let mount = str_of(&mount["mountPath"], "mountPath");
    let local_dir = volume.to_str().unwrap();
    let map = |s: &str| {
        let s = expand(s, &env);
        let mapped = s.replace(&format!("{mount}/"), &format!("{local_dir}/"));
        if mapped == mount {
            local_dir.to_string()
        } else {
            mapped
        }
    };
    let argv: Vec<String> = c["command"]
        .as_array()
        .expect("an explicit command")
        .iter()
        .chain(c["args"].as_array().into_iter().flatten())
        .map(|a| map(str_of(a, "argument")))
        .collect();
    for a in &argv {
        assert!(
            !a.contains(mount),
            "a path under {mount} the test did not map: {argv:?}"
        );
    }
    let probe = c["readinessProbe"]["exec"]["command"]
        .as_array()
        .map(|p| p.iter().map(|a| map(str_of(a, "probe argument"))).collect());
    Local { argv, env, probe }
}

/// A process of `argv` with only `env` (and a PATH on which `pgsalvage` is the binary under
/// test), as in a container.
fn process(argv: &[String], env: &BTreeMap<String, String>) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_pgsalvage")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    );
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", path)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(what: &str, l: &Local) -> Output {
    process(&l.argv, &l.env)
        .output()
        .unwrap_or_else(|e| panic!("{what}: run {:?}: {e}", l.argv))
}

fn said(o: &Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

fn json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).expect("a JSON report")
}

/// What a merge and a single run must agree on.
fn answer(report: &Value) -> Value {
    serde_json::json!({
        "verdict": report["verdict"], "exit_code": report["exit_code"],
        "totals": report["totals"], "findings": report["findings"],
        "findings_truncated": report["findings_truncated"],
    })
}

#[test]
fn the_indexed_job_runs_as_local_processes_and_merges_like_one_run() {
    let (base, target) = pair("deploy", SCHEMA);
    psql(&target, DAMAGE);
    let work = tempfile::tempdir().unwrap();
    let volume = work.path().join("volume");
    std::fs::create_dir(&volume).unwrap();

    // The objects as applied for these two databases: the ConfigMap names them.
    let mut objects = manifests();
    let config = objects
        .iter_mut()
        .find(|o| o["kind"] == "ConfigMap")
        .expect("the ConfigMap");
    config["data"]["PGSALVAGE_BASE"] = url(&base).into();
    config["data"]["PGSALVAGE_TARGET"] = url(&target).into();
    let objects = objects;

    // Step 4, the plan Job.
    let plan = local(
        &objects,
        object(&objects, "Job", "pgsalvage-plan"),
        &volume,
        &[],
    );
    let planned = run("the plan Job", &plan);
    assert_eq!(planned.status.code(), Some(0), "{}", said(&planned));
    let plan_file = json(&volume.join("plan").join("plan.json"));

    // Step 5, the holder; it is Ready when its readiness probe passes.
    let hold = local(
        &objects,
        object(&objects, "Pod", "pgsalvage-hold"),
        &volume,
        &[],
    );
    let probe = hold
        .probe
        .clone()
        .expect("the holder has an exec readiness probe");
    let mut holder: Child = process(&hold.argv, &hold.env)
        .spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e}", hold.argv));
    wait_until("the holder to be Ready", Duration::from_secs(60), || {
        if let Ok(Some(status)) = holder.try_wait() {
            panic!("the holder ended before it was Ready: {status}");
        }
        process(&probe, &hold.env)
            .status()
            .is_ok_and(|s| s.success())
    });

    // Step 6, the Indexed Job: N pods at once, each with its JOB_COMPLETION_INDEX.
    let job = object(&objects, "Job", "pgsalvage-shards");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let n = job["spec"]["completions"].as_u64().expect("completions") as usize;
    assert!(n >= 2, "{n} completions");
    assert_eq!(
        plan_file["shards"].as_u64(),
        Some(n as u64),
        "the plan Job plans as many shards as the Indexed Job has completions"
    );
    let pods: Vec<(usize, Child)> = (0..n)
        .map(|i| {
            let index = [("JOB_COMPLETION_INDEX", i.to_string())];
            let pod = local(&objects, job, &volume, &index);
            let child = process(&pod.argv, &pod.env)
                .spawn()
                .unwrap_or_else(|e| panic!("start shard {i}: {e}"));
            (i, child)
        })
        .collect();
    for (i, child) in pods {
        let done = child.wait_with_output().expect("a shard ends");
        assert_eq!(done.status.code(), Some(0), "shard {i}: {}", said(&done));
    }
    let shard_dir = |i: usize| volume.join("shards").join(format!("shard-{i:03}"));
    for i in 0..n {
        let shard = json(&shard_dir(i).join("shard.json"));
        assert_eq!(shard["shard"], i, "{shard}");
        assert_eq!(
            shard["held"], true,
            "shard {i} read the held snapshots: {shard}"
        );
    }

    // The release, as README.md has it run in the holder's pod.
    let released = pgsalvage(&[
        "snapshot",
        "release",
        "--plan",
        volume.join("plan").to_str().unwrap(),
    ]);
    assert_eq!(released.status.code(), Some(0), "{}", said(&released));
    let held = holder.wait_with_output().unwrap();
    assert_eq!(held.status.code(), Some(0), "the holder: {}", said(&held));

    // Step 7, the merge Job's shell.
    let merge = local(
        &objects,
        object(&objects, "Job", "pgsalvage-merge"),
        &volume,
        &[],
    );
    assert_eq!(merge.argv[..2], ["sh".to_string(), "-c".to_string()]);
    let merged = run("the merge Job", &merge);

    // One run of the same two databases.
    let single_path = work.path().join("single.json");
    let single = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "-q",
        "--json",
        single_path.to_str().unwrap(),
    ]);
    assert_eq!(single.status.code(), Some(1), "{}", said(&single));
    assert_eq!(
        merged.status.code(),
        single.status.code(),
        "the merge Job's exit status: {}",
        said(&merged)
    );
    let expected = json(&single_path);
    assert!(
        expected["totals"]["missing"].as_u64().unwrap() > 10
            && expected["findings"].as_array().unwrap().len() > 50,
        "{expected}"
    );
    let got = json(&volume.join("report.json"));
    assert_eq!(
        answer(&got),
        answer(&expected),
        "the merged report of {n} shards differs from the single run"
    );
}
