package console

import (
	"errors"

	"github.com/spendcap/spendcap"
)

func errorsIsInvalid(err error) bool { return errors.Is(err, spendcap.ErrInvalidArgument) }

// isRefusal says whether err is the backend refusing a call (a spendcap error code): the
// operator's mistake to show, not a failure to log.
func isRefusal(err error) bool {
	var e *spendcap.Error
	return errors.As(err, &e)
}
