# Messages par défaut des e-mails de Herald (français, vouvoiement).
# Les espaces avant « : », « ! » et « ? » sont insécables (U+00A0).

## Commun à tous les e-mails

greeting-named = Bonjour { $name },
greeting-anonymous = Bonjour,
link-fallback = Si le bouton ne fonctionne pas, copiez et collez ce lien dans votre navigateur :
text-button = { $label } :
expiry-minutes =
    { $count ->
        [one] Ce lien expire dans { $count } minute.
       *[other] Ce lien expire dans { $count } minutes.
    }
expiry-hours =
    { $count ->
        [one] Ce lien expire dans { $count } heure.
       *[other] Ce lien expire dans { $count } heures.
    }
expiry-days =
    { $count ->
        [one] Ce lien expire dans { $count } jour.
       *[other] Ce lien expire dans { $count } jours.
    }
code-expiry-minutes =
    { $count ->
        [one] Ce code expire dans { $count } minute.
       *[other] Ce code expire dans { $count } minutes.
    }
code-expiry-hours =
    { $count ->
        [one] Ce code expire dans { $count } heure.
       *[other] Ce code expire dans { $count } heures.
    }
code-expiry-days =
    { $count ->
        [one] Ce code expire dans { $count } jour.
       *[other] Ce code expire dans { $count } jours.
    }
signature = L’équipe { $brand }
footer-sent-to = Cet e-mail a été envoyé à { $email }.
footer-automated = Ceci est un message automatique, merci de ne pas y répondre.

## verify_email

verify_email-subject = Vérifiez votre adresse e-mail pour { $brand }
verify_email-preheader = Confirmez votre adresse e-mail pour finaliser la création de votre compte { $brand }.
verify_email-heading = Vérifiez votre adresse e-mail
verify_email-body = Veuillez confirmer que { $email } est bien votre adresse e-mail en cliquant sur le bouton ci-dessous.
verify_email-button = Vérifier mon adresse e-mail
verify_email-footer = Vous avez reçu cet e-mail car cette adresse a été utilisée pour créer un compte { $brand }. Si vous n’êtes pas à l’origine de cette demande, vous pouvez ignorer cet e-mail.

## reset_email

reset_email-subject = Réinitialisez votre mot de passe { $brand }
reset_email-preheader = Utilisez le lien de cet e-mail pour choisir un nouveau mot de passe.
reset_email-heading = Réinitialisez votre mot de passe
reset_email-body = Nous avons reçu une demande de réinitialisation du mot de passe de votre compte { $brand }. Cliquez sur le bouton ci-dessous pour en choisir un nouveau.
reset_email-button = Réinitialiser le mot de passe
reset_email-footer = Vous avez reçu cet e-mail car une réinitialisation du mot de passe a été demandée pour cette adresse sur { $brand }. Si vous n’êtes pas à l’origine de cette demande, ignorez cet e-mail : votre mot de passe ne sera pas modifié.

## enrollment_email

enrollment_email-subject = Configurez l’authentification multifacteur pour { $brand }
enrollment_email-preheader = Ajoutez une seconde étape de connexion pour protéger votre compte { $brand }.
enrollment_email-heading = Sécurisez votre compte
enrollment_email-body = Nous vous invitons à configurer l’authentification multifacteur pour votre compte { $brand }. Une fois activée, la connexion comporte une seconde étape, ce qui protège votre compte même si votre mot de passe est dérobé.
enrollment_email-factor =
    Méthode : { $factor ->
        [otp] application d’authentification (codes à usage unique)
        [phone] SMS ou appel téléphonique
        [email] e-mail
        [push-notification] notification push
        [webauthn-roaming] clé de sécurité
        [webauthn-platform] empreinte digitale ou reconnaissance faciale sur cet appareil
       *[other] { $factor }
    }
enrollment_email-button = Configurer l’authentification
enrollment_email-footer = Vous avez reçu cet e-mail car l’authentification multifacteur a été demandée pour votre compte sur { $brand }. Si vous n’êtes pas à l’origine de cette demande, ignorez cet e-mail.

## welcome_email

welcome_email-subject = Bienvenue sur { $brand }
welcome_email-preheader = Votre compte { $brand } est prêt.
welcome_email-heading = Bienvenue sur { $brand } !
welcome_email-body = Votre compte a été créé et est prêt à être utilisé. Nous sommes ravis de vous compter parmi nous.
welcome_email-login = Vous pouvez désormais vous connecter à { $app }.
welcome_email-button = Se connecter
welcome_email-footer = Vous avez reçu cet e-mail car un compte a été créé avec cette adresse sur { $brand }. Si vous n’êtes pas à l’origine de cette inscription, vous pouvez ignorer cet e-mail.

## mfa_oob_code

mfa_oob_code-subject = Votre code de vérification { $brand }
mfa_oob_code-preheader = Votre code à usage unique pour { $brand } se trouve dans cet e-mail.
mfa_oob_code-heading = Votre code de vérification
mfa_oob_code-body = Saisissez ce code à usage unique pour poursuivre la configuration de l’authentification multifacteur de votre compte { $brand } :
mfa_oob_code-ignore = Si vous n’avez pas demandé ce code, vous pouvez ignorer cet e-mail en toute sécurité. Ne communiquez jamais ce code à personne.
mfa_oob_code-footer = Vous avez reçu cet e-mail car un code de vérification a été demandé pour votre compte sur { $brand }.
