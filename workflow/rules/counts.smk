rule count:
    input:
        f"{EXP}/data/{{dataset}}/train.json",
    output:
        f"{EXP}/counts/{{dataset}}.csv",
    log:
        f"{EXP}/logs/count/{{dataset}}.log",
    benchmark:
        f"{EXP}/benchmarks/count/{{dataset}}.tsv"
    conda:
        ENV
    params:
        on_bad=lambda wc: on_bad(wc.dataset),
    shell:
        "exec python -m bags count --annotations {input:q} --on-bad {params.on_bad:q} "
        "--out {output:q} 2> {log:q}"
