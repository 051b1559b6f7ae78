//! Scheduling overhead: a generated DAG of no-op tasks, validated and run to completion with
//! its state journalled to a local directory, at 1,000 and 10,000 tasks (the bar: at most
//! 1 ms per task, 1,000 tasks within 2 s, and time linear in the tasks).
//!
//! The DAG is a chain of fan-out/fan-in blocks: a source task, eight tasks reading it, a
//! sink reading all eight; the next block's source waits for the previous sink. Half the
//! edges are declared, half come from data (inputs reading a destination).
//!
//! `cargo bench -p trainstore-pipeline --bench scheduling`

use std::sync::Arc;

use async_trait::async_trait;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use trainstore_pipeline::{
    Amount, Budget, CancellationToken, Executor, ExecutorOptions, Invocation, LocalRunStore,
    Outputs, Pipeline, RunRequest, RunStatus, TaskContext, TaskFailure, TaskRunner, TaskTypes,
};

/// Does nothing, at once.
#[derive(Debug)]
struct NoOp;

#[async_trait]
impl TaskRunner for NoOp {
    async fn run(&self, _task: Invocation, _ctx: TaskContext) -> Result<Outputs, TaskFailure> {
        Ok(Outputs::new())
    }
}

/// A document of about `n` tasks in blocks of ten.
fn document(n: usize) -> String {
    let mut tasks = String::new();
    let mut dependencies = String::new();
    for block in 0..n / 10 {
        let source = format!("b{block}-source");
        tasks.push_str(&format!(
            "    - name: {source}\n      type: command\n      outputs: [{{name: out, destination: /data/{block}/source}}]\n"
        ));
        if block > 0 {
            dependencies.push_str(&format!(
                "    - {{from: b{}-sink, to: {source}}}\n",
                block - 1
            ));
        }
        for worker in 0..8 {
            tasks.push_str(&format!(
                "    - name: b{block}-w{worker}\n      type: command\n      resources: {{cpu: 250m, memory: 64Mi}}\n      inputs: [{{name: in, source: /data/{block}/source}}]\n"
            ));
            dependencies.push_str(&format!(
                "    - {{from: b{block}-w{worker}, to: b{block}-sink}}\n"
            ));
        }
        tasks.push_str(&format!("    - name: b{block}-sink\n      type: command\n"));
    }
    format!(
        "apiVersion: train-platform/v1\nkind: Pipeline\nmetadata:\n  name: bench\nspec:\n  tasks:\n{tasks}  dependencies:\n{dependencies}"
    )
}

fn scheduling(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let types = TaskTypes::new(["command"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let options = ExecutorOptions {
        budget: Budget::new(Amount {
            cpu_millis: 8_000,
            memory_bytes: 16 << 30,
            gpu: 0,
        }),
        ..ExecutorOptions::default()
    };
    let executor = Executor::with_options(
        Arc::new(NoOp),
        Arc::new(LocalRunStore::new(dir.path())),
        options,
    );
    let mut group = c.benchmark_group("scheduling");
    group.sample_size(10);
    for n in [1_000usize, 10_000] {
        let text = document(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("validate", n), &text, |b, text| {
            b.iter(|| Pipeline::parse(text, &types).expect("valid"));
        });
        group.bench_with_input(BenchmarkId::new("validate_and_run", n), &text, |b, text| {
            b.iter(|| {
                let pipeline = Pipeline::parse(text, &types).expect("valid");
                let state = runtime
                    .block_on(executor.run(
                        &pipeline,
                        RunRequest::default(),
                        CancellationToken::new(),
                    ))
                    .expect("run");
                assert_eq!(state.status, RunStatus::Succeeded);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, scheduling);
criterion_main!(benches);
