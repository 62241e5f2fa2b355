"""Learning from outcomes: labelled history, rule effectiveness, learned points, backtests.

Everything here looks at a lead only as it was *before* its outcome was known
(``dataset.Example``): features after the outcome would teach the model the answer.
"""
