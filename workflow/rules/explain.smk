# Saliency maps of one method configuration for one shard of images.


rule explain:
    conda:
        CONDA_ENV
    input:
        unpack(method_input),
        images=SPLIT_TABLE,
        model_files=model_files(),
        forward_settings=forward_settings_input(),
    output:
        SALIENCY_FILE,
    params:
        method=lambda wildcards: METHODS[wildcards.method_id].cli_args(),
        masks=lambda wildcards, input: f"--masks {input.masks}" if "masks" in input.keys() else "",
        rows=shard_rows,
        evidence=evidence_args,
        evidence_files=evidence_files,
        preprocess=preprocess_args(),
        model=model_args(),
        code=stage_fingerprint("explain"),
    threads: CONFIG.threads
    resources:
        mem_mb=3000,
        runtime=120,
        gpu=GPU,
    log:
        "logs/explain/{method_id}/shard-{shard}.log",
    benchmark:
        bench_file(EXPLAIN_BENCHMARK)
    shell:
        "python -m saliency_bench explain {params.method} {params.masks} {params.evidence} --images {input.images} --shard {wildcards.shard} --rows {params.rows}"
        " {params.preprocess} {params.model} --threads {threads} --out {output} > {log} 2>&1"
