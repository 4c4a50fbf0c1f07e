# Which images to explain: the study's validation split (or all, or a file list), sharded.


rule images:
    conda:
        CONDA_ENV
    input:
        [f"{DEMO_DIR}/data"] if DEMO else [],
    output:
        IMAGE_TABLE,
    params:
        source=images_source(),
        split=CONFIG.data.split,
        val_fraction=CONFIG.data.val_fraction,
        split_seed=CONFIG.data.split_seed,
        limit=f"--limit {CONFIG.data.limit}" if CONFIG.data.limit else "",
        per_class=f"--per-class-limit {CONFIG.data.per_class_limit}" if CONFIG.data.per_class_limit else "",
        images_per_job=CONFIG.images_per_job,
        code=stage_fingerprint("images"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "logs/images.log",
    benchmark:
        "benchmarks/images.tsv"
    shell:
        "python -m saliency_bench images {params.source} --split {params.split} --val-fraction {params.val_fraction}"
        " --split-seed {params.split_seed} {params.limit} {params.per_class} --images-per-job {params.images_per_job}"
        " --out {output} > {log} 2>&1"
