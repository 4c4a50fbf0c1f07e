# Deletion and insertion curves (RISE protocol) for one method configuration and shard.


rule evaluate:
    conda:
        CONDA_ENV
    input:
        saliency=SALIENCY_FILE,
        images=SPLIT_TABLE,
        model_files=model_files(),
        forward_settings=forward_settings_input(),
    output:
        records=RECORDS_FILE,
        curves=CURVES_FILE,
    params:
        step_rows=CONFIG.metrics.step_rows,
        deletion=q(CONFIG.metrics.deletion_substrate),
        insertion=q(CONFIG.metrics.insertion_substrate),
        rows=shard_rows,
        preprocess=preprocess_args(),
        model=model_args(),
        code=stage_fingerprint("evaluate"),
    threads: CONFIG.threads
    resources:
        mem_mb=3000,
        runtime=60,
        gpu=GPU,
    log:
        "logs/evaluate/{method_id}/shard-{shard}.log",
    benchmark:
        bench_file(EVALUATE_BENCHMARK)
    shell:
        "python -m saliency_bench evaluate --saliency {input.saliency} --images {input.images} --shard {wildcards.shard} --rows {params.rows}"
        " --step-rows {params.step_rows} --deletion-substrate {params.deletion} --insertion-substrate {params.insertion}"
        " {params.preprocess} {params.model} --threads {threads} --out-records {output.records} --out-curves {output.curves} > {log} 2>&1"
