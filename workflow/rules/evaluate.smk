rule infer:
    input:
        model=run_file("{dataset}", "{method}", "{seed}", "model.pt"),
        val=f"{EXP}/data/{{dataset}}/val.json",
        images=f"{EXP}/data/{{dataset}}/images",
    output:
        run_file("{dataset}", "{method}", "{seed}", "detections.json"),
    log:
        f"{EXP}/logs/infer/{{dataset}}_{{method}}_seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/infer/{{dataset}}_{{method}}_seed{{seed}}.tsv"
    wildcard_constraints:
        method=pattern(methods_by_path("train") + methods_by_path("posthoc")),
    conda:
        ENV
    threads: config["threads"]
    resources:
        **job_resources("infer", min(RES["gpu"], 1)),
    params:
        score_thresh=config["inference"]["score_thresh"],
        detections=kept_per_img(),
        batch_size=config["inference"]["batch_size"],
        workers=config["inference"]["workers"],
        data=data_options,
    shell:
        "exec python -m bags infer --model-file {input.model:q} --annotations {input.val:q} "
        "--images {input.images:q} {params.data:q} "
        "--score-thresh {params.score_thresh} --detections-per-img {params.detections} "
        "--batch-size {params.batch_size} --workers {params.workers} --threads {threads} "
        "--out {output:q} 2> {log:q}"


rule evaluate:
    input:
        val=f"{EXP}/data/{{dataset}}/val.json",
        detections=run_file("{dataset}", "{method}", "{seed}", "detections.json"),
        counts=f"{EXP}/counts/{{dataset}}.csv",
    output:
        run_file("{dataset}", "{method}", "{seed}", "metrics.json"),
    log:
        f"{EXP}/logs/evaluate/{{dataset}}_{{method}}_seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/evaluate/{{dataset}}_{{method}}_seed{{seed}}.tsv"
    conda:
        ENV
    resources:
        **job_resources("eval"),
    params:
        edges=config["groups"]["edges"],
        detections=config["inference"]["detections_per_img"],
        backend=config["evaluation"]["backend"],
        per_class=per_class_option(),
    shell:
        "exec python -m bags evaluate --annotations {input.val:q} "
        "--detections {input.detections:q} --counts {input.counts:q} --edges {params.edges} "
        "--detections-per-img {params.detections} {params.per_class} "
        "--backend {params.backend:q} "
        "--out {output:q} 2> {log:q}"


rule norms:
    input:
        model=run_file("{dataset}", "{method}", "{seed}", "model.pt"),
        counts=f"{EXP}/counts/{{dataset}}.csv",
    output:
        run_file("{dataset}", "{method}", "{seed}", "weight_norms.csv"),
    log:
        f"{EXP}/logs/norms/{{dataset}}_{{method}}_seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/norms/{{dataset}}_{{method}}_seed{{seed}}.tsv"
    wildcard_constraints:
        method=pattern(methods_by_path("train") + methods_by_path("posthoc")),
    conda:
        ENV
    shell:
        "exec python -m bags norms --model-file {input.model:q} --counts {input.counts:q} "
        "--out {output:q} 2> {log:q}"
