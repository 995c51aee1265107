# Classifier-level rows on the frozen baseline's features, computed once per seed and kept
# (a later method reuses them; delete cache/ to reclaim the space).


rule cache_features:
    input:
        model=run_file("longtail", "baseline", "{seed}", "model.pt"),
        train=f"{EXP}/data/longtail/train.json",
        val=f"{EXP}/data/longtail/val.json",
        images=f"{EXP}/data/longtail/images",
    output:
        train=f"{EXP}/cache/seed{{seed}}/train.pt",
        val=f"{EXP}/cache/seed{{seed}}/val.pt",
    log:
        f"{EXP}/logs/cache/seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/cache/seed{{seed}}.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        **job_resources("infer", min(RES["gpu"], 1)),
    params:
        out_dir=lambda wc, output: os.path.dirname(output.train),
        data=["--on-bad", on_bad("longtail"), "--image-paths", image_paths("longtail")],
        batch_size=config["inference"]["batch_size"],
    shell:
        "exec python -m bags cache --model-file {input.model:q} --train {input.train:q} "
        "--val {input.val:q} --images {input.images:q} {params.data:q} "
        "--batch-size {params.batch_size} --out-dir {params.out_dir:q} "
        "--threads {threads} 2> {log:q}"


rule fit_head:
    input:
        baseline=run_file("longtail", "baseline", "{seed}", "model.pt"),
        counts=f"{EXP}/counts/longtail.csv",
        cache=rules.cache_features.output,
        groups=groups_file,
    output:
        model=run_file("{dataset}", "{method}", "{seed}", "model.pt"),
        log=run_file("{dataset}", "{method}", "{seed}", "train_log.csv"),
        detections=run_file("{dataset}", "{method}", "{seed}", "detections.json"),
        norms=run_file("{dataset}", "{method}", "{seed}", "weight_norms.csv"),
    log:
        f"{EXP}/logs/train/{{dataset}}_{{method}}_seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/train/{{dataset}}_{{method}}_seed{{seed}}.tsv"
    wildcard_constraints:
        dataset="longtail",
        method=pattern(methods_by_path("head")),
    conda:
        ENV
    threads: config["threads"]
    resources:
        **job_resources("infer"),
    params:
        cache_dir=lambda wc, input: os.path.dirname(input.cache[0]),
        settings=lambda wc: as_json(
            {**settings_of(METHODS[wc.method]), "seed": int(wc.seed)}
        ),
        method=lambda wc: as_json(method_spec(METHODS[wc.method])),
        groups=lambda wc, input: ["--groups-file", input.groups] if input.groups else [],
        score_thresh=config["inference"]["score_thresh"],
        detections=kept_per_img(),
    shell:
        "exec python -m bags head --baseline {input.baseline:q} --cache-dir {params.cache_dir:q} "
        "--counts {input.counts:q} --method {params.method:q} {params.groups:q} "
        "--settings {params.settings:q} --score-thresh {params.score_thresh} "
        "--detections-per-img {params.detections} "
        "--out-model {output.model:q} --out-log {output.log:q} "
        "--out-detections {output.detections:q} --out-norms {output.norms:q} "
        "--threads {threads} 2> {log:q}"


rule posthoc:
    input:
        baseline=run_file("longtail", "baseline", "{seed}", "model.pt"),
        counts=f"{EXP}/counts/longtail.csv",
        train=f"{EXP}/data/longtail/train.json",
        images=f"{EXP}/data/longtail/images",
        heldout=heldout_input,
    output:
        model=run_file("{dataset}", "{method}", "{seed}", "model.pt"),
        log=run_file("{dataset}", "{method}", "{seed}", "train_log.csv"),
    log:
        f"{EXP}/logs/posthoc/{{dataset}}_{{method}}_seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/posthoc/{{dataset}}_{{method}}_seed{{seed}}.tsv"
    wildcard_constraints:
        dataset="longtail",
        method=pattern(methods_by_path("posthoc")),
    conda:
        ENV
    threads: config["threads"]
    resources:
        **job_resources("infer", min(RES["gpu"], 1)),
    params:
        method=lambda wc: as_json(method_spec(METHODS[wc.method])),
        choice=lambda wc, input: (
            ["--heldout", input.heldout, "--edges", *config["groups"]["edges"]]
            if input.heldout
            else []
        ),
        data=data_options,
    shell:
        "exec python -m bags posthoc --baseline {input.baseline:q} --method {params.method:q} "
        "--counts {input.counts:q} --annotations {input.train:q} --images {input.images:q} "
        "{params.choice:q} {params.data:q} --out {output.model:q} "
        "--out-log {output.log:q} --threads {threads} 2> {log:q}"
