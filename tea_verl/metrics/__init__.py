"""Measurements on scored samples and reward laws (numpy and torch; verl only through its registry).

* :mod:`.samples`: the data model of scored samples (:class:`~.samples.Samples`) and its readers;
* :mod:`.curves`: exact best-of-k and selected-gold curves, the test-time scaling-law fit;
* :mod:`.report`: ``tea-verl bon-report``'s tables, files and plot;
* :mod:`.quality`: an estimator's spread valuation ratio (SVR) and alignment (rho) on a law;
* :mod:`.diagnose`: ``tea-verl diagnose``, a user's rewards against the estimators' assumptions.
"""
