"""The IBU model: candidate, champion and predictions."""

#: The asset group and the registry name of the IBU model.
GROUP = "beer_ibu"
MODEL_NAME = "beer_ibu"
