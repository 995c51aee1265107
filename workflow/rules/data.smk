# Dataset stage: for each configured dataset, LVIS-format data/<dataset>/{train,val}.json and an
# image folder data/<dataset>/images. The source decides which rule makes them.


rule synthesize:
    input:
        pretraining_input,
    output:
        train=f"{EXP}/data/{{dataset}}/train.json",
        val=f"{EXP}/data/{{dataset}}/val.json",
        images=directory(f"{EXP}/data/{{dataset}}/images"),
    log:
        f"{EXP}/logs/synthesize/{{dataset}}.log",
    benchmark:
        f"{EXP}/benchmarks/synthesize/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=datasets_from("synthetic"),
    conda:
        ENV
    params:
        spec=lambda wc: synthetic_spec(wc.dataset),
        root=lambda wc, output: os.path.dirname(output.train),
        classes=lambda wc, input: (
            [
                "--classes-from",
                input[0],
                "--min-instances",
                source_settings(wc.dataset)["min_instances"],
            ]
            if input
            else []
        ),
    shell:
        "exec python -m bags synthesize --spec {params.spec:q} --out {params.root:q} {params.classes:q} 2> {log:q}"


rule heldout:
    input:
        f"{EXP}/data/longtail/train.json",
    output:
        f"{EXP}/data/longtail/heldout.json",
    log:
        f"{EXP}/logs/data/longtail_heldout.log",
    conda:
        ENV
    params:
        share=config["heldout"],
        on_bad=on_bad("longtail"),
    shell:
        "exec python -m bags heldout --annotations {input:q} --share {params.share} --seed 0 "
        "--on-bad {params.on_bad:q} --out {output:q} 2> {log:q}"


rule download:
    output:
        "resources/downloads/{name}/{file}",
    log:
        "resources/logs/download/{name}/{file}.log",
    wildcard_constraints:
        name="[A-Za-z0-9_.-]+",
        file="[A-Za-z0-9_][A-Za-z0-9_.-]*",
    retries: 2
    conda:
        ENV
    params:
        url=lambda wc: config["downloads"][wc.name]["url"],
        checks=lambda wc: [
            item
            for key, value in config["downloads"][wc.name].items()
            if key != "url" and value is not None
            for item in (f"--{key.replace('_', '-')}", value)
        ],
    shell:
        "exec python -m bags download --url {params.url:q} {params.checks:q} --out {output:q} 2> {log:q}"


rule lvis_annotations:
    input:
        lvis_annotation_input,
    output:
        f"{EXP}/data/{{dataset}}/{{split}}.json",
    log:
        f"{EXP}/logs/data/{{dataset}}_{{split}}.log",
    wildcard_constraints:
        dataset=datasets_from("lvis"),
        split="train|val",
    conda:
        ENV
    params:
        member=lambda wc: f"lvis_{source_settings(wc.dataset)['version']}_{wc.split}.json",
        source=lambda wc, input: (
            ["--archive", input[0]]
            if input
            else ["--existing-folder", source_settings(wc.dataset)["annotations"]]
        ),
    shell:
        "exec python -m bags place --member {params.member:q} {params.source:q} --out {output:q} 2> {log:q}"


rule coco_image_folder:
    input:
        "resources/downloads/coco_{split}2017/{split}2017.zip",
    output:
        directory("resources/coco/{split}2017"),
    log:
        "resources/logs/unzip/{split}2017.log",
    wildcard_constraints:
        split="train|val",
    conda:
        ENV
    shell:
        "exec python -m bags unzip --archive {input:q} --member-prefix {wildcards.split}2017/ "
        "--out {output:q} 2> {log:q}"


rule lvis_images:
    input:
        lvis_images_input,
    output:
        directory(f"{EXP}/data/{{dataset}}/images"),
    log:
        f"{EXP}/logs/data/{{dataset}}_images.log",
    wildcard_constraints:
        dataset=datasets_from("lvis"),
    conda:
        ENV
    params:
        existing=lambda wc: source_settings(wc.dataset).get("images")
        or "resources/coco",
    shell:
        "exec python -m bags link --source {params.existing:q} --out {output:q} 2> {log:q}"


rule user_dataset:
    output:
        train=f"{EXP}/data/{{dataset}}/train.json",
        images=directory(f"{EXP}/data/{{dataset}}/images"),
    log:
        f"{EXP}/logs/data/{{dataset}}.log",
    wildcard_constraints:
        dataset=datasets_from("coco"),
    conda:
        ENV
    params:
        train=lambda wc: source_settings(wc.dataset)["train"],
        images=lambda wc: source_settings(wc.dataset)["images"],
    shell:
        "python -m bags link --source {params.train:q} --out {output.train:q} 2> {log:q} && "
        "exec python -m bags link --source {params.images:q} --out {output.images:q} 2>> {log:q}"


rule user_val:
    input:
        counts=f"{EXP}/counts/{{dataset}}.csv",
    output:
        f"{EXP}/data/{{dataset}}/val.json",
    log:
        f"{EXP}/logs/data/{{dataset}}_val.log",
    wildcard_constraints:
        dataset=datasets_from("coco"),
    conda:
        ENV
    params:
        val=lambda wc: source_settings(wc.dataset)["val"],
    shell:
        "exec python -m bags lvis-fields --annotations {params.val:q} --counts {input.counts:q} "
        "--out {output:q} 2> {log:q}"


rule coco_train_annotations:
    input:
        "resources/downloads/coco_annotations2017/annotations_trainval2017.zip",
    output:
        f"{EXP}/data/{{dataset}}/train.json",
    log:
        f"{EXP}/logs/data/{{dataset}}_train.log",
    wildcard_constraints:
        dataset=datasets_from("coco_pretrained"),
    conda:
        ENV
    shell:
        "exec python -m bags place --member annotations/instances_train2017.json "
        "--archive {input:q} --out {output:q} 2> {log:q}"
