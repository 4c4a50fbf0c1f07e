# The plan before any model job (results/plan.md: images, shards, jobs, forward passes, time per
# stage, disk, checked against free space), and after the run the estimate beside the measured time.
# The plan is no input of the stages that compute: a plan rerun for a new config would then hide the
# config's changes from Snakemake's rerun checks of every stage after it. Only timing and the report's
# pages read it, at the end, for the names of this run's benchmark files. Its top priority makes it the
# first job to run once the image table (and the forward settings) exist.

rule plan:
    priority: 100
    conda:
        CONDA_ENV
    input:
        images=IMAGE_TABLE,
        model_files=model_files(),
        forward_settings=forward_settings_input(),
    output:
        md=PLAN,
        json=PLAN_JSON,
    params:
        config=q(json.dumps(CONFIG.to_dict(), sort_keys=True)),
        size=" ".join(map(str, CONFIG.preprocess.size)),
        model=model_args(),
        single_jobs=lambda wildcards: " ".join(map(q, single_job_benchmarks())),
        code=stage_fingerprint("plan"),
    threads: CONFIG.threads
    resources:
        mem_mb=2000,
        runtime=10,
        gpu=GPU,
    log:
        "logs/plan.log",
    benchmark:
        bench_file("plan.tsv")
    shell:
        "python -m saliency_bench plan --config {params.config} --images {input.images}"
        " --size {params.size} {params.model} --threads {threads} --single-jobs {params.single_jobs}"
        " --out {output.md} --out-json {output.json} > {log} 2>&1"
        " && cat {output.md}"


# No benchmark file of its own: the table cannot hold its own job, and the next run would count it.
rule timing:
    conda:
        CONDA_ENV
    input:
        targets=all_targets(),
        plan=PLAN_JSON,
    output:
        TIMING,
    params:
        benchmarks=BENCHMARK_ROOT,
        code=stage_fingerprint("timing"),
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    log:
        "logs/timing.log",
    shell:
        "python -m saliency_bench timing --plan {input.plan} --benchmarks {params.benchmarks} --out {output} > {log} 2>&1"
