"""The language: .arch text to located syntax trees, and what reads them.

Owns the grammar's loading and the parser (parser.py, with its LALR tables
kept in the package by lalr_tables.py), the located syntax
tree (ast.py) and its JSON form for the on-disk parse cache (astdata.py,
parsecache.py), expressions compiled to closures (expr.py), the hot ones
further to Python bytecode (bytecode.py), and the builtins they may call
(builtins.py), programs — a file and the files it `use`s
(program.py) — and the base every other room stands on: located errors
(errors.py), where bundled files live (resources.py), the caches
(caches.py, which describes each one) and the budgets that bound what a spec
or config may ask for (budget.py).

Imports: nothing else of archdsl. Every other room may import this one.
"""
