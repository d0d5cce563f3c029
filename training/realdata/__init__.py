"""Evaluation of routecast's models on public real data, through the same Feast pipeline.

``olist_eval`` scores the delivery-time quantile model on Olist orders after a cut date;
``freshretail_eval`` scores the calibrated stockout-risk classifier on FreshRetailNet
stores the model never saw.
"""
