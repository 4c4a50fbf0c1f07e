# memory_format / batch_size / precision auto: time the model once on this machine, at the run's
# input size (BatchNorms folded unless fold_bn: false); every model job then runs with the recorded
# settings (same bits everywhere). fp32, bf16 (fp16 on CUDA) are timed too and recorded; only
# precision: auto may pick bf16.


rule tune_forward:
    conda:
        CONDA_ENV
    input:
        model_files=model_files(),
        images=SPLIT_TABLE,  # bad images stop the run before any timing
    output:
        FORWARD_SETTINGS,
    params:
        model=model_source_args(),
        size=" ".join(map(str, CONFIG.preprocess.size)),
        precision=CONFIG.precision,
        fold="" if CONFIG.fold_bn else "--no-fold-bn",
        batch_size=CONFIG.batch_size,
        memory_format=CONFIG.memory_format,
        code=stage_fingerprint("tune_forward"),
    threads: CONFIG.threads
    resources:
        mem_mb=3000,
        runtime=10,
        gpu=GPU,
    log:
        "logs/tune_forward.log",
    benchmark:
        bench_file("tune_forward.tsv")
    shell:
        "python -m saliency_bench tune-forward {params.model} --size {params.size} --precision {params.precision}"
        " --batch-size {params.batch_size} --memory-format {params.memory_format} --threads {threads} {params.fold}"
        " --out {output} > {log} 2>&1"
