"""The periodic maintenance work: resending failed emails and cleaning up."""
