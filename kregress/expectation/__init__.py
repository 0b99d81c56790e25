"""The expectation wing: what a scenario expects and how an observation is held against it.

expect (observed against expected, derived from facts), behaviour (an observation as short
text), record (one test's results entry, typed), documents (documented rules), deviations
(stated rules kernels break).
"""
