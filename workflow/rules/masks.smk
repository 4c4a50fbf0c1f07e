# RISE masks: one HDF5 file per mask configuration, shared by every image.
# The generator arguments (kind, p, seed, set id, rise.upsample, rise.perlin.engine/frequency/octaves/phase)
# come from workflow_config.MaskConfig.cli_args, so changing any of them reruns the set.


rule masks:
    conda:
        CONDA_ENV
    input:
        # Masks do not read the table; waiting for it lets a bad image stop the run before any mask is drawn
        # (it changes with the split, not with data.limit).
        SPLIT_TABLE,
    output:
        MASK_FILE,
    params:
        generator=lambda wildcards: MASKS[wildcards.mask_id].cli_args(),
        n=CONFIG.rise.n_masks,
        s=CONFIG.rise.s,
        size=" ".join(map(str, CONFIG.preprocess.size)),
        dtype=CONFIG.rise.mask_dtype,
        code=stage_fingerprint("masks"),
    threads: 1
    resources:
        mem_mb=1500,
        runtime=30,
    log:
        "logs/masks/{mask_id}.log",
    benchmark:
        bench_file(MASK_BENCHMARK)
    shell:
        "python -m saliency_bench masks {params.generator} --n {params.n} --s {params.s} --size {params.size}"
        " --dtype {params.dtype} --out {output} > {log} 2>&1"
