# Model-parameter randomisation test (Adebayo et al. 2018), when sanity.enabled is set.


rule sanity:
    conda:
        CONDA_ENV
    input:
        unpack(lambda wildcards: {"masks": [MASK_FILE.format(mask_id=m) for m in MASKS][:1]}),
        images=SPLIT_TABLE,  # its first images are the run's: a new data.limit above n_images reruns nothing
        model_files=model_files(),
        forward_settings=forward_settings_input(),
    output:
        table=report("results/sanity/sanity.csv", category="Sanity", caption="../report/sanity.rst"),
        figure=report("results/figures/sanity.png", category="Sanity", caption="../report/sanity.rst"),
    params:
        methods=" ".join(wc.sanity_method_names(CONFIG)),
        layers=" ".join(CONFIG.abscam.layers),
        n_images=min(CONFIG.sanity.images, sum(SHARD_SIZES)),
        preprocess=preprocess_args(),
        model=model_args(),
        code=stage_fingerprint("sanity"),
    threads: CONFIG.threads
    resources:
        mem_mb=3000,
        runtime=60,
        gpu=GPU,
    log:
        "logs/sanity.log",
    benchmark:
        bench_file(SANITY_BENCHMARK)
    shell:
        "python -m saliency_bench sanity --methods {params.methods} --layers {params.layers} --masks {input.masks}"
        " --images {input.images} --n-images {params.n_images} {params.preprocess} {params.model} --threads {threads}"
        " --out {output.table} --figure {output.figure} > {log} 2>&1"
