"""The testers' Panel dashboard: talks to the model server over HTTP only, never loads a model."""
