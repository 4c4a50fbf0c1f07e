# Which images to explain: the study's validation split (or all, or a file list), sharded and every
# image decoded (a bad one stops the run here); then the run's images, the first data.limit of them.
# The limit is no param of `images`: a new limit reruns only `image_table` and the jobs of the shards
# it changes.


rule images:
    conda:
        CONDA_ENV
    input:
        [f"{DEMO_DIR}/data"] if DEMO else [],
    output:
        SPLIT_TABLE,
    params:
        source=images_source(),
        split=CONFIG.data.split,
        val_fraction=CONFIG.data.val_fraction,
        split_seed=CONFIG.data.split_seed,
        per_class=f"--per-class-limit {CONFIG.data.per_class_limit}" if CONFIG.data.per_class_limit else "",
        images_per_job=CONFIG.images_per_job,
        data=lambda wildcards: data_files(),  # an image added, removed or replaced reruns the table
        code=stage_fingerprint("images"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "logs/images.log",
    benchmark:
        bench_file("images.tsv")
    shell:
        "python -m saliency_bench images {params.source} --split {params.split} --val-fraction {params.val_fraction}"
        " --split-seed {params.split_seed} {params.per_class} --images-per-job {params.images_per_job}"
        " --out {output} > {log} 2>&1"


rule image_table:
    priority: 100  # the plan waits for it
    conda:
        CONDA_ENV
    input:
        SPLIT_TABLE,
    output:
        IMAGE_TABLE,
    params:
        limit=f"--limit {CONFIG.data.limit}" if CONFIG.data.limit else "",
        images_per_job=CONFIG.images_per_job,
        code=stage_fingerprint("images"),
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    log:
        "logs/image_table.log",
    benchmark:
        bench_file("image_table.tsv")
    shell:
        "python -m saliency_bench images --table {input} {params.limit} --images-per-job {params.images_per_job}"
        " --out {output} > {log} 2>&1"
