package console

import (
	"errors"

	"github.com/spendcap/spendcap"
)

func errorsIsInvalid(err error) bool { return errors.Is(err, spendcap.ErrInvalidArgument) }
