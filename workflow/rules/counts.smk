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
    shell:
        "python -m bags count --annotations {input} --out {output} 2> {log}"
