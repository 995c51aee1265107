# Dataset stage: for each configured dataset, LVIS-format data/<dataset>/{train,val}.json and an
# image folder data/<dataset>/images. The source decides which rule makes them.


rule synthesize:
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
        spec=lambda wc: as_json(config["datasets"][wc.dataset]["synthetic"]),
        root=lambda wc, output: os.path.dirname(output.train),
    shell:
        "python -m bags synthesize --spec {params.spec} --out {params.root} 2> {log}"


rule download:
    output:
        "resources/downloads/{name}/{file}",
    log:
        "resources/logs/download/{name}/{file}.log",
    retries: 2
    conda:
        ENV
    params:
        url=lambda wc: config["downloads"][wc.name]["url"],
        checks=lambda wc: " ".join(
            f"--{key.replace('_', '-')} {value}"
            for key, value in config["downloads"][wc.name].items()
            if key != "url" and value is not None
        ),
    shell:
        "python -m bags download --url {params.url} {params.checks} --out {output} 2> {log}"


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
        existing=lambda wc: source_settings(wc.dataset).get("annotations") or "",
    shell:
        "python -m bags place --member {params.member} --archive '{input}' "
        "--existing-folder '{params.existing}' --out {output} 2> {log}"


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
        "python -m bags unzip --archive {input} --member-prefix {wildcards.split}2017/ "
        "--out {output} 2> {log}"


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
        "python -m bags link --source {params.existing} --out {output} 2> {log}"


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
        "(python -m bags link --source {params.train} --out {output.train} && "
        "python -m bags link --source {params.images} --out {output.images}) 2> {log}"


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
        "python -m bags lvis-fields --annotations {params.val} --counts {input.counts} "
        "--out {output} 2> {log}"


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
        "python -m bags place --member annotations/instances_train2017.json --archive {input} "
        "--existing-folder '' --out {output} 2> {log}"
